"""Train the default model (fifo-shapes); the same as ``python -m fifo_shapes.train``.

    python scripts/train_shapes.py --help    # the stages that made the shipped weights are in
                                             # fifo_shapes/train.py and docs/default-model.md
"""

from fifo_shapes.train import main

if __name__ == "__main__":
    main()

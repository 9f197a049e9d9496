"""Ray job: train the fusion model (the same function as `raymer train`).

    python jobs/train_fusion.py --config configs/train/sample.yaml \
        --features s3://bucket/runs/extract --output s3://bucket/runs/train [key=value ...]
"""

import sys

from raymer.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))

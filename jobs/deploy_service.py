"""Ray job: deploy the raymer Serve application on the cluster and return (it keeps serving).

    ray job submit --working-dir . -- python jobs/deploy_service.py \
        --checkpoint s3://bucket/runs/compare [--config configs/serve/local.yaml] [key=value ...]
"""

import sys

from raymer.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", "--detach", *sys.argv[1:]]))

import sys

from publisher.bridge.cli import main

sys.exit(main())

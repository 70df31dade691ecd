import sys

from visnet.bench.deconv import main

sys.exit(main())

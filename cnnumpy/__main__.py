"""``python -m cnnumpy``: the ``cnnumpy`` command line (see ``cnnumpy.cli``)."""

from cnnumpy.cli import main

raise SystemExit(main())

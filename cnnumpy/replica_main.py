"""Entry point of a replica process: ``python -m cnnumpy.replica_main CMD_FD REPLY_FD``.

Started by :class:`cnnumpy.replicas.Replicas`; serves until the caller closes the pipe.
"""

import sys

from cnnumpy.replicas import _serve

if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))

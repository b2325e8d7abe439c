"""``python -m tradesignals_dagster.streaming [<pipeline id>]``: run a pipeline without its app.py.

The processor is ``build`` from ``pipelines/<id>/app.py`` when that file exists, else the
passthrough; the pipeline id is the argument or ``$TRADESIGNALS_PIPELINE``.
"""

from __future__ import annotations

import sys

from tradesignals_dagster.streaming.entry import main

if __name__ == "__main__":
    main(pipeline_key=sys.argv[1] if len(sys.argv) > 1 else None)

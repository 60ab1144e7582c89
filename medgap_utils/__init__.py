"""medgap_utils: the tested library behind the medgap book.

Submodules are imported on use (``from medgap_utils import metrics``), so
importing the package stays fast and needs none of the heavy dependencies.
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

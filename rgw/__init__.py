"""rgw: the Python ``rack-gateway`` command-line client.

The package is a library first: ``rgw.login`` runs the browser login, ``rgw.config`` owns the
config file, ``rgw.client`` speaks HTTP to a gateway, and ``rgw.cli`` is the thin command line on
top.  ``rgw.testing`` holds the reference gateway used by the tests, the demo and users' own tests.
"""

__version__ = "0.1.0"

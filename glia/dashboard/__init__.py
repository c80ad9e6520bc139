"""``glia dashboard``: watch design runs in a browser (first part: finished runs from disk).

See :func:`make_app`. Built on aiohttp, already a dependency of Glia, so the dashboard adds no new
package to install.
"""

from glia.dashboard._server import TokenRequired, make_app

__all__ = ["TokenRequired", "make_app"]

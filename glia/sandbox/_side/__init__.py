"""Design-side Glia: the only Glia code inside a design's sandbox, where it is the ``glia``
package.

A design's process holds the design and this package and nothing else of Glia: the policy base
classes (``glia.policies`` there), the view types (``glia.views``), the wire protocol and the
loop that answers the trusted simulator's calls. It imports only the standard library and
msgspec (numpy only when a design asks for ``self.rng`` or imports it), and only relatively, so
the same files serve as ``glia.sandbox._side`` in the trusted process (which uses
:mod:`.protocol`) and as ``glia`` in the sandbox.
"""

"""Architecture arithmetic for scans: each layer's receptive field and a unit's input window, from
:mod:`visnet.receptive_fields` (the forward pass's cost is visnet.architecture.forward_flops)."""
from ..receptive_fields import FIELDS, ReceptiveField, field_side, field_window, receptive_field

__all__ = ["FIELDS", "ReceptiveField", "field_side", "field_window", "receptive_field"]

"""What a TF1 graph computes for a fetch: tests that a run does not compute an op it has no need for."""


def op_types_computed(tensors) -> set:
    """The types of every op a run fetching ``tensors`` computes (their inputs and control inputs, transitively)."""
    seen, types, pending = set(), set(), [tensor.op for tensor in tensors]
    while pending:
        op = pending.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        types.add(op.type)
        pending.extend(tensor.op for tensor in op.inputs)
        pending.extend(op.control_inputs)
    return types

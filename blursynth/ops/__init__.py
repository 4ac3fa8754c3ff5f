"""Pure array operations: camera response, window planning, accumulation."""

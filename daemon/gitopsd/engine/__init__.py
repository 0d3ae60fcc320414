"""Pure logic over the model: loading, validation, graphs, rendering and conditions."""

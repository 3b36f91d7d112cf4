"""moelab: reproducible evidence about MoE routing."""

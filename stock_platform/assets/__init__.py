"""Software-defined assets, one module per pipeline layer."""

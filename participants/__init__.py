"""Reference participant services: payment, inventory and shipping."""

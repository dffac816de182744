"""The coordinators' and mobilizers' web dashboard (Flask blueprint, login and roles)."""

"""The embedded local AWS (moto's server and the sample data) and the live demo."""

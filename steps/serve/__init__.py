"""What runs inside the images ``mlsteps package`` builds: server.py is copied into each image
as a file of its own and imports nothing from mlsteps."""

from tinyedge.cli import app

app()

"""Promotion reviews a person acts on: the gate's outcome, approval or rejection (command line or a
paused Prefect flow run), what changed between challenger and champion, the decision history of
each registered model and rollback of ``@champion``."""

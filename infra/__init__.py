"""Deploy-time code beside the nested stacks: release tooling and `make deploy-check`."""

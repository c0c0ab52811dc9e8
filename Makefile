.PHONY: demo test lint bootstrap services

bootstrap:
	scripts/bootstrap

demo:
	scripts/demo

test:
	scripts/test

services:
	scripts/services

# ijepa — I-JEPA as an embeddable C-ABI library written in Swift.
#   make test    install what is missing, build, run every test
#   make deps    install system packages (libopenblas-dev, pkg-config) when missing

SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin
SWIFT ?= swift
PYTHON ?= python3

.PHONY: all deps test swift-test clean

all: deps
	$(SWIFT) build -c release

# System packages, installed only when missing (needs root or sudo, as on CI).
deps:
	@if ! pkg-config --exists openblas 2>/dev/null; then \
	  echo "== installing libopenblas-dev pkg-config"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev pkg-config; \
	fi

test: deps swift-test

swift-test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

clean:
	rm -rf .build build

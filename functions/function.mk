# Shared recipe of the function artifacts (included by functions/<name>/Makefile, which sets
# FUNCTION and FN_FILES). `sam build` runs make in the repository root (template.yaml: Metadata
# BuildMethod makefile, WorkingDirectory .) with ARTIFACTS_DIR set.
#
# Artifact = FN_FILES + the labelwise package (shared/labelwise) + requirements.txt (cp312 wheels),
# minus what the python3.12 runtime already has (boto3 stack) and what the ModelLayer provides.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

ROOT ?= $(CURDIR)
FN_DIR := $(ROOT)/functions/$(FUNCTION)
VENV_PY := $(ROOT)/.venv/bin/python
PYTHON ?= $(if $(wildcard $(VENV_PY)),$(VENV_PY),python3)

PIP_PLATFORM := --only-binary=:all: --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
	--python-version 3.12 --implementation cp
PIP_FLAGS := --quiet --disable-pip-version-check --no-compile --upgrade $(PIP_PLATFORM)
# Provided by the Lambda python3.12 runtime (pulled in by aws-xray-sdk -> botocore).
RUNTIME_PROVIDED := boto3 botocore s3transfer urllib3 dateutil six.py
RUNTIME_PROVIDED_DIST := boto3-* botocore-* s3transfer-* urllib3-* python_dateutil-* six-*

define build_function
	@test -d "$(ROOT)/shared/labelwise" || { \
	  echo "functions/$(FUNCTION)/Makefile: $(ROOT) is not the labelwise repository root" >&2; exit 2; }
	@test -n "$(ARTIFACTS_DIR)" || { echo "functions/$(FUNCTION)/Makefile: ARTIFACTS_DIR is not set" >&2; exit 2; }
	@for f in $(FN_FILES); do test -f "$(FN_DIR)/$$f" || { echo "functions/$(FUNCTION)/$$f is missing" >&2; exit 2; }; done
	"$(PYTHON)" -m pip install $(PIP_FLAGS) --target "$(ARTIFACTS_DIR)" -r "$(FN_DIR)/requirements.txt" \
	  2> >(grep -v '^WARNING: Location' >&2)
	cd "$(ARTIFACTS_DIR)" && rm -rf bin $(RUNTIME_PROVIDED) $(RUNTIME_PROVIDED_DIST)
	rm -rf "$(ARTIFACTS_DIR)/labelwise"
	for f in $(FN_FILES); do cp "$(FN_DIR)/$$f" "$(ARTIFACTS_DIR)/$$f"; done
	cp -R "$(ROOT)/shared/labelwise" "$(ARTIFACTS_DIR)/labelwise"
	@# Build-time and dev-only code (modelbuild, evaluation), the local server's playground page
	@# (docs/deploy.md "Playground") and caches stay out of the artifact.
	rm -rf "$(ARTIFACTS_DIR)/labelwise/modelbuild" "$(ARTIFACTS_DIR)/labelwise/evaluation" \
	  "$(ARTIFACTS_DIR)/labelwise/playground"
	find "$(ARTIFACTS_DIR)" -depth -type d \( -name __pycache__ -o -name tests \) -exec rm -rf {} +
	find "$(ARTIFACTS_DIR)" -name '*.pyc' -delete
	@du -sb "$(ARTIFACTS_DIR)" | awk '{printf "$(notdir $(ARTIFACTS_DIR)): %-55s %7.1f MB\n", $$2, $$1/1e6}'
endef

# SPDX-License-Identifier: Apache-2.0
# Convenience targets around CMake/CTest. The real build lives in CMakeLists.txt;
# each target first installs any missing Debian packages (packaging/build-deps.sh).

BUILD_DIR ?= build
ASAN_DIR  ?= build-asan
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all build deps test asan demo clean format

all: build

deps:
	@sh packaging/build-deps.sh

build: deps
	cmake -S . -B $(BUILD_DIR) -DBT_WERROR=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j$(JOBS)

# -j2 only: the cluster tests start real daemons and are timing-sensitive.
# Per-test timeouts come from the CMake files.
test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j2

asan: deps
	cmake -S . -B $(ASAN_DIR) -DBT_WERROR=ON -DBT_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_DIR) -j$(JOBS)
	ctest --test-dir $(ASAN_DIR) --output-on-failure -j2

demo: build
	BT_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) python3 tests/demo.py

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)

format:
	find src include tests -name '*.[ch]' -print0 | xargs -0 -r clang-format -i

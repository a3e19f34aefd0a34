# SPDX-License-Identifier: Apache-2.0
# Convenience targets around CMake/CTest. The real build lives in CMakeLists.txt;
# each target first installs any missing Debian packages (packaging/build-deps.sh).

BUILD_DIR ?= build
ASAN_DIR  ?= build-asan
PKG_DIR   ?= build-pkg
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all build deps test asan demo package clean format

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

# The local eviction drill: a mock IMDS, three nodes on 127.0.0.1-3, one
# Spot eviction and its timeline (azure/drill/README.md). Options through
# DRILL_FLAGS, e.g. make demo DRILL_FLAGS='--notice 8 --nodes 4'.
DRILL_FLAGS ?=
demo: build
	bash azure/drill/local-drill.sh --build-dir $(BUILD_DIR) $(DRILL_FLAGS)

# beethoven and beethoven-dev as .deb and .rpm in $(PKG_DIR)/packages/,
# built for the prefix /usr (packaging/README.md).
package: deps
	JOBS=$(JOBS) sh packaging/build-packages.sh $(PKG_DIR)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(PKG_DIR)

format:
	find src include tests -name '*.[ch]' -print0 | xargs -0 -r clang-format -i

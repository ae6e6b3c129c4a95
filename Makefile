# Thin wrapper over CMake. The two commands of the README:
#   make run    install what is missing, build, start Mosquitto + the gateway
#   make test   install what is missing, build with sanitizers, run every test
.PHONY: all build run test fuzz clean

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 60

all: build

build:
	@scripts/deps
	cmake -S . -B build/run -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMQIM_SANITIZE=OFF -DMQIM_BUILD_TESTS=OFF
	cmake --build build/run -j $(JOBS)

run: build
	exec scripts/run

test:
	@scripts/deps
	cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug -DMQIM_SANITIZE=ON -DMQIM_BUILD_TESTS=ON
	cmake --build build/test -j $(JOBS)
	ctest --test-dir build/test --output-on-failure -j $(JOBS) --timeout 600

fuzz:
	@scripts/deps
	CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMQIM_FUZZ=ON -DMQIM_BUILD_GATEWAY=OFF -DMQIM_BUILD_TESTS=ON
	cmake --build build/fuzz -j $(JOBS)
	@for t in envelope topic; do \
	  mkdir -p build/fuzz/corpus/$$t && cp -n tests/fuzz/corpus/$$t/* build/fuzz/corpus/$$t/ ; \
	  echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
	  build/fuzz/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=20000 \
	    -artifact_prefix=build/fuzz/crash-$$t- build/fuzz/corpus/$$t || exit 1; \
	done

clean:
	rm -rf build

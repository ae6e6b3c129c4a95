# Thin wrapper over CMake. The two commands of the README:
#   make run    install what is missing, build, start Mosquitto + the gateway
#   make test   install what is missing, build with sanitizers, run every test
# and:
#   make        install what is missing, build build/run (no sanitizers, no tests)
#   make fuzz   libFuzzer runs (clang) of every fuzz target, FUZZ_SECONDS each
#   make size   Cortex-M4 and RV32 footprint of common/ and the device library, the TLS port
#               per mbedTLS line, the linked firmware (docs/footprint.md)
#   make faults the long fault suite (docs/reliability.md): tens of thousands of
#               messages under gateway kills, broker restarts, link faults; about 10 min;
#               then 300 power cuts of the flash outbox firmware under QEMU (~5 min)
#   make bench  benchmarks (release build in build/bench; docs/benchmarks.md), ~17 min
#   make bench-quick  the same, shorter (~8 min); fails when a message is lost or
#               duplicated, when the raw baseline's generator costs more CPU per
#               message than the broker, or when the median routed/raw < 0.25
#   make bench-matrix  shipped settings: 1/4/16 pairs x windows 20/200; fails on a
#               broker death, an expired client, a publisher stall, a lost message
#   make bench-idle  shipped settings: 10 min idle, then a burst (~12 min)
#   make bench-stacks  the MQTT client stacks side by side (docs/architecture.md)
#   make bench-web  the web client in headless Chromium: first load to chat list, browser -> CLI
#               device delivered mark (docs/web.md), ~1 min
#   make bench-bot  `mqim bot` round trip: message in, command run, reply delivered (target < 100 ms)
#   make sighup-load  SIGHUP under 1,000 routed DMs/s against the release build (build/bench):
#               nothing lost, the pace held (the sanitizer build of `make test` cannot keep it)
#   make test-broker-2.0.11  the broker-facing integration tests against Mosquitto 2.0.11 (docs/testing.md)
#   make clean  remove build/
#
# Variables: JOBS (build parallelism, default nproc), CTEST_JOBS (tests in
# parallel; each test uses its own temp dir and free port), FUZZ_SECONDS (60),
# FUZZ_TARGETS (names to run, e.g. "ctl router"; default every target),
# MQIM_PORT / MQIM_DATA for `make run` (see scripts/run).
.PHONY: all build deps run test fuzz size faults clean bench bench-quick bench-build bench-matrix bench-idle bench-cpu \
        bench-stacks bench-web bench-bot test-broker-2.0.11 sighup-load

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS ?= $(JOBS)
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=

all: build

deps:
	@scripts/deps

build: deps
	cmake -S . -B build/run -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMQIM_SANITIZE=OFF -DMQIM_BUILD_TESTS=OFF
	cmake --build build/run -j $(JOBS)

run: build
	exec scripts/run

test: deps
	cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug -DMQIM_SANITIZE=ON -DMQIM_BUILD_TESTS=ON
	cmake --build build/test -j $(JOBS)
	ctest --test-dir build/test --output-on-failure -j $(CTEST_JOBS) --timeout 300

# Each fuzz_NAME binary runs on a copy of tests/fuzz/corpus/NAME in
# build/fuzz/corpus/NAME (new inputs stay out of the source tree); crashes
# land in build/fuzz/artifacts/.
fuzz: deps
	CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMQIM_FUZZ=ON \
	  -DMQIM_BUILD_GATEWAY=ON -DMQIM_BUILD_TESTS=ON -DMQIM_FIRMWARE_TEST=OFF -DMQIM_MBEDTLS3_TEST=OFF
	cmake --build build/fuzz -j $(JOBS)
	@set -e; found=0; failed=; mkdir -p build/fuzz/artifacts; \
	for bin in build/fuzz/tests/fuzz/fuzz_*; do \
	  [ -x "$$bin" ] && [ -f "$$bin" ] || continue; \
	  name=$${bin##*/fuzz_}; \
	  if [ -n "$(FUZZ_TARGETS)" ]; then case " $(FUZZ_TARGETS) " in *" $$name "*) ;; *) continue ;; esac; fi; \
	  found=1; \
	  corpus=build/fuzz/corpus/$$name; mkdir -p "$$corpus"; \
	  if [ -d tests/fuzz/corpus/$$name ]; then cp -R tests/fuzz/corpus/$$name/. "$$corpus"/; fi; \
	  echo "fuzz_$$name: $(FUZZ_SECONDS) s on $$corpus"; \
	  "$$bin" -max_total_time=$(FUZZ_SECONDS) -max_len=20000 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/artifacts/$$name- "$$corpus" || failed="$$failed $$name"; \
	done; \
	[ $$found = 1 ] || { echo "fuzz: no fuzz_* binaries in build/fuzz/tests/fuzz" >&2; exit 1; }; \
	[ -z "$$failed" ] || { echo "fuzz: findings in:$$failed (inputs in build/fuzz/artifacts/)" >&2; exit 1; }

clean:
	rm -rf build

# The integration tests that exercise the broker (routing, sessions, ACL,
# reloads, TLS, restarts, provisioning, keep-alive) against Debian 12's own
# Mosquitto 2.0.11, fetched with apt-get download into build/mosquitto-2.0.11
# (scripts/mosquitto-fetch; nothing installed). docs/testing.md.
BROKER_2011_TESTS ?= routing|rejections|receipts|presence|ctl|acl|restart|crash|groups|tls|security|provisioning|keepalive
test-broker-2.0.11: deps
	cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug -DMQIM_SANITIZE=ON -DMQIM_BUILD_TESTS=ON
	cmake --build build/test -j $(JOBS)
	MQIM_MOSQUITTO=$$(scripts/mosquitto-fetch 2.0.11 $(CURDIR)/build/mosquitto-2.0.11) && \
	  echo "test-broker-2.0.11: $$MQIM_MOSQUITTO" && export MQIM_MOSQUITTO && \
	  ctest --test-dir build/test --output-on-failure -j $(CTEST_JOBS) --timeout 300 \
	    -L integration -R 'integration\.($(BROKER_2011_TESTS))$$'

# The long fault suite on the sanitizer build; numbers appended to
# build/faults-report.txt (FAULTS lines), which docs/reliability.md quotes.
# FAULTS_SEED repeats a run; FAULTS_MESSAGES per sender (10000). Then the
# flash outbox firmware under FAULTS_FLASH_CUTS power cuts (300; QEMU killed
# at random moments, tests/integration/test_flash_firmware.py).
FAULTS_MESSAGES ?= 10000
FAULTS_FLASH_CUTS ?= 300
FAULTS_SEED ?=
faults: deps
	cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug -DMQIM_SANITIZE=ON -DMQIM_BUILD_TESTS=ON
	cmake --build build/test -j $(JOBS)
	cd tests/integration && MQIM_FAULTS_LONG=1 MQIM_FAULTS_MESSAGES=$(FAULTS_MESSAGES) \
	  $(if $(FAULTS_SEED),MQIM_FAULTS_SEED=$(FAULTS_SEED)) \
	  MQIM_FAULTS_REPORT=$(CURDIR)/build/faults-report.txt \
	  MQIM_GATEWAY=$(CURDIR)/build/test/gateway/mqim-gateway MQIM_CLI=$(CURDIR)/build/test/boards/posix/mqim \
	  MQIM_AUTH_PLUGIN=$(CURDIR)/build/test/gateway/mqim_auth.so \
	  MQIM_SOURCE_DIR=$(CURDIR) /usr/bin/python3 -W ignore::ResourceWarning test_faults.py -v
	cd tests/integration && MQIM_FLASH_CUTS=$(FAULTS_FLASH_CUTS) \
	  $(if $(FAULTS_SEED),MQIM_FLASH_SEED=$(FAULTS_SEED)) \
	  MQIM_FAULTS_REPORT=$(CURDIR)/build/faults-report.txt \
	  MQIM_GATEWAY=$(CURDIR)/build/test/gateway/mqim-gateway MQIM_SOURCE_DIR=$(CURDIR) \
	  MQIM_AUTH_PLUGIN=$(CURDIR)/build/test/gateway/mqim_auth.so \
	  MQIM_FLASH_FIRMWARE=$(CURDIR)/build/test/firmware/mqim-fw-flash.elf \
	  MQIM_FW_MATERIAL=$(CURDIR)/build/test/firmware-material \
	  /usr/bin/python3 -W ignore::ResourceWarning test_flash_firmware.py -v

# Benchmarks: a release build without sanitizers (never build/test's).
# bench/paho-src builds Paho 1.3.14 from Debian trixie's source package for
# bench-stacks; when the archive cannot serve it, the other benchmarks go on.
bench-build: deps
	bench/paho-src build/bench || echo "bench-build: Paho 1.3.14 not built (bench/paho-src failed); make bench-stacks goes on without it" >&2
	cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMQIM_SANITIZE=OFF -DMQIM_BUILD_TESTS=OFF
	cmake --build build/bench -j $(JOBS) --target mqim-gateway mqim_load outbox_bench \
	  stack_paho stack_gwpub $$(pkg-config --exists libmosquitto && echo stack_mosq) \
	  $$([ -f build/bench/paho-1.3.14/install/include/MQTTAsync.h ] && echo stack_paho_1314)

sighup-load: deps
	cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMQIM_SANITIZE=OFF -DMQIM_BUILD_TESTS=OFF
	cmake --build build/bench -j $(JOBS) --target mqim-gateway mqim_load
	cd tests/integration && MQIM_SIGHUP_RATE=1000 MQIM_GATEWAY=$(CURDIR)/build/bench/gateway/mqim-gateway \
	  MQIM_LOAD=$(CURDIR)/build/bench/bench/mqim_load MQIM_SOURCE_DIR=$(CURDIR) \
	  /usr/bin/python3 -W ignore::ResourceWarning test_operations.py -v Reload.test_sighup_under_load_loses_nothing

bench: bench-build
	python3 bench/run.py --build build/bench

bench-bot: deps
	cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMQIM_SANITIZE=OFF -DMQIM_BUILD_TESTS=OFF
	cmake --build build/bench -j $(JOBS) --target mqim-gateway mqim
	/usr/bin/python3 bench/bot_roundtrip.py --build build/bench

bench-quick: bench-build
	python3 bench/run.py --quick --build build/bench

bench-matrix: bench-build
	python3 bench/run.py --matrix --build build/bench

bench-idle: bench-build
	python3 bench/run.py --idle-burst 600 --build build/bench

# issue 13's gateway targets in CPU time: µs per routed message at
# saturation, 500/s and 1,000/s, and the p99 it adds at 1,000/s
bench-cpu: bench-build
	python3 bench/run.py --cpu --build build/bench

bench-stacks: bench-build
	python3 bench/stacks.py --build build/bench

# The web client (docs/web.md) on the build of `make` (build/run: no sanitizers).
bench-web: build
	/usr/bin/python3 bench/web_bench.py --build build/run

# Footprint on Cortex-M4F, measured like coreMQTT's table; the firmware
# figures come from the last `make test` (build/test).
size: deps
	scripts/size build/test

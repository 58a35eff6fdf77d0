# Caisson. `make demo` shows the containerizer at work; `make test` runs every
# test (privileged ones included, as root), the ppc64le and darwin cross-builds, the
# pure-Go tests under qemu-user and the cgroup v2 tests in a VM. Both install
# what they need on first use.

GO        ?= go
BIN       := bin/caisson
PKGS      := ./...
# Packages whose tests are pure Go (no root, no runtime): they also run under
# qemu-ppc64le. Privileged tests in them skip when CAISSON_TEST_PURE=1.
PURE_PKGS := ./api/... ./oci/... ./isolators/ ./isolators/isolatorstest/ ./isolators/cgroups/ ./internal/atomicfile/ ./internal/userfile/ ./internal/iptables/ ./cni/ \
             ./containerizer/ ./containerizer/image/ ./containerizer/runc/ ./cmd/caisson/ \
             ./internal/mountinfo/ ./internal/loopdev/ ./internal/xfsquota/ ./volumes/ ./volumes/client/ ./volumes/driver/ ./volumes/isolator/ \
             ./resources/ ./gpu/topology/ ./gpu/procfs/ ./gpu/cdi/ ./gpu/manager/ ./gpu/isolator/ ./scheduler/... ./master/
APT_PKGS  := runc crun busybox-static qemu-user-static iptables nftables iproute2 containernetworking-plugins \
             docker.io containerd e2fsprogs xfsprogs util-linux gcc gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross
# CNI plugins newer than Debian's (spec 1.1.0: GC, STATUS), built from the Go
# module proxy into a cache dir the tests find (internal/cnitest).
CNI_PLUGINS_VERSION := v1.9.1
CNI_PLUGINS_DIR     := .cache/cni-$(CNI_PLUGINS_VERSION)
CNI_PLUGINS         := main/bridge main/loopback ipam/host-local meta/portmap meta/firewall meta/bandwidth meta/tuning
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
export CGO_ENABLED ?= 0
FUZZTIME  ?= 15s
# The scheduler's event stream fuzzer finds more with longer runs.
FUZZTIME_EVENTS ?= 30s

.PHONY: all build deps cni-plugins plugin test test-unit test-race test-fuzz cross test-ppc64le test-arm64 test-cgroup2 bench demo lint fuzz clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/caisson
	CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations $(GO) build -ldflags '$(LDFLAGS)' -o bin/caisson-nvml ./cmd/caisson-nvml

# Install the host packages the tests and the demo use (Debian/Ubuntu, as root).
deps:
	@missing=""; \
	for c in runc crun busybox qemu-ppc64le-static qemu-aarch64-static iptables nft ip dockerd docker containerd mkfs.ext4 mkfs.xfs unshare gcc powerpc64le-linux-gnu-gcc; do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	[ -x /usr/lib/cni/bridge ] || missing="$$missing containernetworking-plugins"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "run as root to install $(APT_PKGS)" >&2; exit 1; fi; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PKGS); \
	fi

cni-plugins: $(CNI_PLUGINS_DIR)/bridge

# The volume driver as a managed Docker plugin: a directory that
# `docker plugin create caisson/volume bin/plugin` accepts (config.json and a
# rootfs with the static binary).
plugin: build
	./scripts/plugin-bundle.sh bin/plugin $(BIN)
	@echo "now: docker plugin create caisson/volume bin/plugin && docker plugin enable caisson/volume"

$(CNI_PLUGINS_DIR)/bridge:
	@mkdir -p $(CNI_PLUGINS_DIR)
	GOBIN=$(CURDIR)/$(CNI_PLUGINS_DIR) CGO_ENABLED=0 GOFLAGS=-mod=mod $(GO) install \
		$(foreach p,$(CNI_PLUGINS),github.com/containernetworking/plugins/plugins/$(p)@$(CNI_PLUGINS_VERSION))

test: deps cni-plugins lint test-unit test-race test-fuzz cross test-ppc64le test-arm64 test-cgroup2

test-unit:
	$(GO) test -count=1 -timeout 20m -p 1 $(PKGS)

# The packages with goroutines, again under the race detector
# (internal/repocheck's test fails when one is missing).
test-race:
	CGO_ENABLED=1 $(GO) test -count=1 -race -timeout 15m -p 1 ./containerizer/ ./isolators/cgroups/ ./containerizer/runc/ \
		./volumes/driver/ ./volumes/client/ ./volumes/isolator/ ./internal/loopdev/ ./scheduler/store/ \
		./gpu/manager/ ./cni/ ./resources/ ./internal/flock/ ./internal/userfile/ ./internal/testutil/ ./cmd/caisson/ ./agent/ ./agenthook/ \
		./master/
	# gpu/nvml is the one cgo package (go-nvml and its simulated DGX machines).
	CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations $(GO) test -count=1 -race ./gpu/nvml/

cross:
	GOOS=linux GOARCH=ppc64le $(GO) build ./...
	GOOS=linux GOARCH=ppc64le $(GO) vet ./...
	GOOS=linux GOARCH=arm64 $(GO) build ./...
	# A developer's laptop: everything builds, and every package's tests
	# compile and vet (Linux-only code sits in _linux.go files, stubbed).
	GOOS=darwin GOARCH=arm64 $(GO) build ./...
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	GOOS=darwin GOARCH=amd64 $(GO) build ./...
	@mkdir -p bin/ppc64le
	CGO_ENABLED=1 CC=powerpc64le-linux-gnu-gcc CGO_CFLAGS=-Wno-deprecated-declarations GOOS=linux GOARCH=ppc64le $(GO) build -o bin/ppc64le/caisson-nvml ./cmd/caisson-nvml

# Build the pure-Go tests for ppc64le and run them under qemu-user.
test-ppc64le: deps
	@mkdir -p bin/ppc64le
	@set -e; for p in $$($(GO) list $(PURE_PKGS)); do \
		name=$$(echo $$p | tr / _); \
		GOOS=linux GOARCH=ppc64le $(GO) test -c -o bin/ppc64le/$$name.test $$p; \
		if [ -f bin/ppc64le/$$name.test ]; then \
			echo "qemu-ppc64le: $$p"; \
			(cd $$($(GO) list -f '{{.Dir}}' $$p) && CAISSON_TEST_PURE=1 qemu-ppc64le-static $(CURDIR)/bin/ppc64le/$$name.test -test.count=1 -test.timeout 10m); \
		fi; \
	done
	# gpu/nvml with cgo (go-nvml's simulated machines), cross-compiled. Its
	# test that builds and runs caisson-nvml skips (CAISSON_TEST_PURE=1).
	CGO_ENABLED=1 CC=powerpc64le-linux-gnu-gcc CGO_CFLAGS=-Wno-deprecated-declarations GOOS=linux GOARCH=ppc64le \
		$(GO) test -c -o bin/ppc64le/gpu_nvml.test ./gpu/nvml/
	cd gpu/nvml && CAISSON_TEST_PURE=1 qemu-ppc64le-static -L /usr/powerpc64le-linux-gnu $(CURDIR)/bin/ppc64le/gpu_nvml.test -test.count=1 -test.timeout 10m

# The seccomp profile's conversion for arm64 (SCMP_ARCH_AARCH64 and ARM,
# set_tls and the rest), compared with Docker's as the library builds it on
# arm64: oci's tests built for arm64 and run under qemu-user.
test-arm64: deps
	@mkdir -p bin/arm64
	GOOS=linux GOARCH=arm64 $(GO) test -c -o bin/arm64/oci.test ./oci/
	cd oci && CAISSON_TEST_PURE=1 qemu-aarch64-static $(CURDIR)/bin/arm64/oci.test -test.count=1 -test.timeout 10m

# The cgroups isolator's tests and the end-to-end tests on a unified cgroup v2
# host, which this hybrid one is not: a small VM booted with only cgroup2
# mounted (KVM, or QEMU's emulator where there is no /dev/kvm or it cannot
# boot Debian's kernel; about 3 minutes then). The VM also runs the XFS
# project quota tests (internal/xfsquota, and volumes/driver's
# TestDirSizeOnXFS), which skip on this kernel (no CONFIG_XFS_QUOTA) but not
# on Debian's.
test-cgroup2: deps
	GO=$(GO) ./scripts/cgroup2-vm.sh

# Launch+remove: caisson vs bare runc run vs docker run, and the same with a
# bridge network and a published port; docker run -v with our dir volume
# driver vs Docker's local driver (a private dockerd each); Mount+Unmount of
# each volume backend.
bench: deps build
	$(GO) test -run '^$$' -bench 'Launch$$|DockerVolume' -benchtime 1x -timeout 20m ./e2e/
	$(GO) test -run '^$$' -bench 'MountUnmount' -benchtime 200x ./volumes/driver/
	# The scheduler core: a Mesos-shaped allocation cycle (goal: 100 ms at
	# 10,000 agents x 1,000 sessions; Mesos 1.8 took 1.1 s) and placement
	# throughput (goal: 50,000 placements/s); bytes per agent and per
	# pending and running task; the store's appends.
	$(GO) test -run '^$$' -bench 'AllocationCycle|Placement' -benchtime 5x ./scheduler/
	$(GO) test -run '^$$' -bench 'OneTaskSessions' -benchtime 3x ./scheduler/
	$(GO) test -run '^$$' -bench 'Memory' -benchtime 1x ./scheduler/
	$(GO) test -run '^$$' -bench 'Append' -benchtime 2000x ./scheduler/store/
	# The master end to end: 1,000 simulated agents over HTTPS on loopback,
	# 100 sessions of 1,000 tasks, submit to running update acknowledged
	# (goal: 10,000 tasks/s), next to the bare core; bytes per agent and
	# per task.
	$(GO) test -run '^$$' -bench 'ClusterThroughput|MasterMemory' -benchtime 1x -timeout 10m ./master/
	./scripts/bench-sim.sh

demo: deps build
	./scripts/demo.sh
	./scripts/demo-cluster.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations $(GO) vet ./gpu/nvml/ ./cmd/caisson-nvml/
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./gpu/nvml/ ./cmd/caisson-nvml/
	# Every relative link and #anchor of the docs resolves.
	$(GO) run ./scripts/doclinks README.md CONTRIBUTING.md docs/*.md examples/*.md

# Every fuzz target for a moment, as part of make test: each runs its seed
# corpus and a couple of seconds of new inputs.
# Counts, not durations: at the end of a duration, Go 1.26's fuzzing
# coordinator may report "context deadline exceeded" as a failure of the
# target, with no failing input (golang/go#75804, fixed in Go 1.27); a
# count has no deadline to race.
test-fuzz:
	$(MAKE) fuzz FUZZTIME=5000x FUZZTIME_EVENTS=500x

# Every native fuzz target for FUZZTIME each (about ten minutes in all;
# make fuzz FUZZTIME=5m for a longer run). internal/repocheck's test fails
# when a Fuzz function is missing here.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseGPURequest$$' -fuzztime $(FUZZTIME) ./api/
	$(GO) test -run '^$$' -fuzz '^FuzzParseSize$$' -fuzztime $(FUZZTIME) ./api/
	$(GO) test -run '^$$' -fuzz '^FuzzParseMount$$' -fuzztime $(FUZZTIME) ./cmd/caisson/
	$(GO) test -run '^$$' -fuzz '^FuzzParsePublish$$' -fuzztime $(FUZZTIME) ./cmd/caisson/
	$(GO) test -run '^$$' -fuzz '^FuzzParseVolumeFlag$$' -fuzztime $(FUZZTIME) ./cmd/caisson/
	$(GO) test -run '^$$' -fuzz '^FuzzParseSessionFile$$' -fuzztime $(FUZZTIME) ./cmd/caisson/
	$(GO) test -run '^$$' -fuzz '^FuzzLoadFile$$' -fuzztime $(FUZZTIME) ./cni/
	$(GO) test -run '^$$' -fuzz '^FuzzNetworkFromBytes$$' -fuzztime $(FUZZTIME) ./cni/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzParseLogLevel$$' -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzLookupUser$$' -fuzztime $(FUZZTIME) ./containerizer/
	$(GO) test -run '^$$' -fuzz '^FuzzDigestFromName$$' -fuzztime $(FUZZTIME) ./containerizer/image/
	$(GO) test -run '^$$' -fuzz '^FuzzExtract$$' -fuzztime $(FUZZTIME) ./containerizer/image/
	$(GO) test -run '^$$' -fuzz '^FuzzParseManifest$$' -fuzztime $(FUZZTIME) ./containerizer/image/
	$(GO) test -run '^$$' -fuzz '^FuzzResolveArchive$$' -fuzztime $(FUZZTIME) ./containerizer/image/
	$(GO) test -run '^$$' -fuzz '^FuzzParseBase$$' -fuzztime $(FUZZTIME) ./gpu/cdi/
	$(GO) test -run '^$$' -fuzz '^FuzzParseLDCache$$' -fuzztime $(FUZZTIME) ./gpu/cdi/
	$(GO) test -run '^$$' -fuzz '^FuzzReadMajors$$' -fuzztime $(FUZZTIME) ./gpu/cdi/
	$(GO) test -run '^$$' -fuzz '^FuzzReadMIGMinors$$' -fuzztime $(FUZZTIME) ./gpu/cdi/
	$(GO) test -run '^$$' -fuzz '^FuzzAllocate$$' -fuzztime $(FUZZTIME) ./gpu/topology/
	$(GO) test -run '^$$' -fuzz '^FuzzParseDevNum$$' -fuzztime $(FUZZTIME) ./internal/loopdev/
	$(GO) test -run '^$$' -fuzz '^FuzzContaining$$' -fuzztime $(FUZZTIME) ./internal/mountinfo/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/mountinfo/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRequest$$' -fuzztime $(FUZZTIME) ./master/
	$(GO) test -run '^$$' -fuzz '^FuzzParseAmounts$$' -fuzztime $(FUZZTIME) ./resources/
	$(GO) test -run '^$$' -fuzz '^FuzzEvents$$' -fuzztime $(FUZZTIME_EVENTS) ./scheduler/
	$(GO) test -run '^$$' -fuzz '^FuzzUnmarshalEvent$$' -fuzztime $(FUZZTIME) ./scheduler/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./scheduler/scenario/
	$(GO) test -run '^$$' -fuzz '^FuzzParseNodes$$' -fuzztime $(FUZZTIME) ./scheduler/trace/
	$(GO) test -run '^$$' -fuzz '^FuzzParsePods$$' -fuzztime $(FUZZTIME) ./scheduler/trace/
	$(GO) test -run '^$$' -fuzz '^FuzzValidateName$$' -fuzztime $(FUZZTIME) ./volumes/
	$(GO) test -run '^$$' -fuzz '^FuzzHostPath$$' -fuzztime $(FUZZTIME) ./volumes/client/
	$(GO) test -run '^$$' -fuzz '^FuzzParseSpec$$' -fuzztime $(FUZZTIME) ./volumes/client/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./volumes/driver/
	$(GO) test -run '^$$' -fuzz '^FuzzParseOptions$$' -fuzztime $(FUZZTIME) ./volumes/driver/
	$(GO) test -run '^$$' -fuzz '^FuzzRemovableName$$' -fuzztime $(FUZZTIME) ./volumes/driver/

clean:
	rm -rf bin

# unideploy: `make`, `make test`, `make demo`, `make bench`, `make install`.
#
# Sources are found by wildcard, so adding a module means adding a file:
#   lib/*.c                 -> build/libunideploy.a
#   cmd/deploy/*.c          -> bin/deploy
#   cmd/deploy-agent/*.c    -> bin/deploy-agent
#   tests/unit/test_*.c     -> build/tests/test_*  (cmocka, one per module)
#   templates/pong/pong.c   -> build/pong          (the sample app)

PREFIX   ?= /usr/local
CC       ?= cc
PKGS     := libgit2 libcurl jansson libssh2 libarchive libcrypto
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -iquote lib \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

# The sanitizer build keeps its own objects and binaries, so a later plain
# `make` never picks up instrumented ones (and vice versa).
ifeq ($(SANITIZE),1)
CFLAGS   += -fsanitize=address,undefined -fno-sanitize-recover=undefined \
            -fno-omit-frame-pointer -O1
LDFLAGS  += -fsanitize=address,undefined
BUILD    := build/san
BINDIR   := build/san/bin
else
BUILD    := build/rel
BINDIR   := bin
endif

LIB_SRC   := $(wildcard lib/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
DEPLOY_OBJ:= $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/deploy/*.c))
AGENT_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/deploy-agent/*.c))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
DEPS_OK   := build/.deps-ok

.PHONY: all deps test unit integration demo bench install clean
all: $(BINDIR)/deploy $(BINDIR)/deploy-agent $(BUILD)/pong

# Missing Debian build dependencies are installed when we are root, else the
# apt-get line is printed and the build stops (SPEC §1).
$(DEPS_OK): ci/install-deps.sh
	@sh ci/install-deps.sh build
	@mkdir -p build && touch $@
deps: $(DEPS_OK)

$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libunideploy.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BINDIR)/deploy: $(DEPLOY_OBJ) $(BUILD)/libunideploy.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BINDIR)/deploy-agent: $(AGENT_OBJ) $(BUILD)/libunideploy.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/pong: templates/pong/pong.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libunideploy.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/libunideploy.a $(LDFLAGS) $(LDLIBS) -lcmocka

# Tests of the daemon's parts link the agent's objects (all but main.o).
AGENT_PARTS := $(filter-out %/main.o,$(AGENT_OBJ))
$(BUILD)/tests/test_agent_%: tests/unit/test_agent_%.c $(AGENT_PARTS) $(BUILD)/libunideploy.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -iquote cmd/deploy-agent -o $@ $< $(AGENT_PARTS) $(BUILD)/libunideploy.a $(LDFLAGS) $(LDLIBS) -lcmocka

# The fixture unikernel of the qemu tests and benchmark (32-bit multiboot).
FIXTURE_KERNEL := $(BUILD)/fixtures/kernel.elf
$(FIXTURE_KERNEL): $(wildcard tests/fixtures/kernel/*)
	sh tests/fixtures/kernel/build.sh $@ fixture

# `make test`: every suite, then one closing line "N passed, N failed".
test: all $(UNIT_BIN) $(FIXTURE_KERNEL)
	@sh ci/install-deps.sh test
	@BUILD=$(BUILD) BINDIR=$(BINDIR) bash tests/run.sh

unit: $(UNIT_BIN)
	@BUILD=$(BUILD) ONLY=unit bash tests/run.sh

integration: all $(FIXTURE_KERNEL)
	@BUILD=$(BUILD) BINDIR=$(BINDIR) ONLY=integration bash tests/run.sh

demo: all
	@sh ci/install-deps.sh test
	@BUILD=$(BUILD) bash templates/demo.sh

bench: all
	@sh ci/install-deps.sh bench
	@BUILD=$(BUILD) bash bench/run.sh

# Under $(PREFIX): the binaries, the hook and templates, the systemd unit
# (its paths rewritten for PREFIX), the docs, and man pages when there are
# any (man/*.N). DESTDIR stages it all elsewhere, as packagers do.
DOCDIR   := $(PREFIX)/share/doc/unideploy
UNITDIR  := $(PREFIX)/lib/systemd/system
MANPAGES := $(wildcard man/*.[1-8])
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/unideploy
	install -m 0755 bin/deploy bin/deploy-agent $(DESTDIR)$(PREFIX)/bin/
	cp -R hooks templates $(DESTDIR)$(PREFIX)/share/unideploy/
	install -d $(DESTDIR)$(PREFIX)/share/unideploy/ci
	install -m 0755 ci/deploy-ci.sh $(DESTDIR)$(PREFIX)/share/unideploy/ci/
	install -d $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR)
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	sed 's|/usr/local|$(PREFIX)|g' templates/agent/deploy-agent.service \
		>$(DESTDIR)$(UNITDIR)/deploy-agent.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/deploy-agent.service
	for m in $(MANPAGES); do \
		s=$${m##*.}; \
		install -d $(DESTDIR)$(PREFIX)/share/man/man$$s && \
		install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/ || exit 1; \
	done

clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(DEPLOY_OBJ:.o=.d) $(AGENT_OBJ:.o=.d) $(UNIT_BIN:=.d)

# refseg: one-command set-up.  `make demo` runs the main job, `make test` runs every test.
# Every set-up step is idempotent: a stamp file under $(VENV)/.refseg-stamps/ records it, and is
# redone when its inputs change.  Set-up prints one line per step and stops loudly at the step
# that broke.
#
# ROS 2 distribution of the PyPI wheels: ROS_DISTRO=jazzy (the default: the LTS, supported to
# 2029) or ROS_DISTRO=kilted, pinned in requirements/ros-$(ROS_DISTRO).txt.  The two sets share
# package names, so each distro gets its own venv (.venv for Jazzy, .venv-kilted for Kilted): a
# switch never leaves one distro's packages in the other's venv.  A venv given by hand (VENV=...)
# records its distro and is rebuilt from scratch when asked for the other one.

PYTHON ?= python3
ROS_DISTRO ?= jazzy
ROS_DISTROS := jazzy kilted
ifeq ($(filter $(ROS_DISTRO),$(ROS_DISTROS)),)
$(error ROS_DISTRO=$(ROS_DISTRO): refseg's set-up knows the wheels of $(ROS_DISTROS) only, e.g. `make setup ROS_DISTRO=jazzy`)
endif
VENV ?= $(if $(filter jazzy,$(ROS_DISTRO)),.venv,.venv-$(ROS_DISTRO))
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMPS := $(VENV)/.refseg-stamps
ROS_REQUIREMENTS := requirements/ros-$(ROS_DISTRO).txt
MSGS_BUILD := build/$(ROS_DISTRO)/refseg_msgs
ABS_VENV := $(abspath $(VENV))
JOBS ?= 2
PYTEST_ARGS ?=

# Run-time environment of everything below: the venv is the ROS 2 prefix (ament index, rosidl).
export AMENT_PREFIX_PATH := $(ABS_VENV)
export ROS_DISTRO
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
# Fast DDS: the executables apply config/fastdds.xml themselves (refseg_node/dds_profile.py).
export PYTHONDONTWRITEBYTECODE := 1

step = @printf '\n\033[1m[refseg setup] %s\033[0m\n' $(1)
fail = (printf '\n\033[31m[refseg setup] FAILED: %s\033[0m\n' $(1) >&2; exit 1)

.PHONY: all setup test lint unit demo bench colcon clean distclean help ament-register FORCE

# The distro the venv was made for (recorded in its first stamp); another one rebuilds it.
VENV_DISTRO := $(strip $(shell cat $(STAMPS)/venv 2>/dev/null))
REBUILD_VENV := $(if $(VENV_DISTRO),$(if $(filter $(ROS_DISTRO),$(VENV_DISTRO)),,FORCE))

all: setup

help:
	@echo "make demo   - set up (if needed) and run the demo on the synthetic tabletop world"
	@echo "make test   - set up (if needed), lint, and run every test"
	@echo "              ROS_DISTRO=jazzy (default, .venv) or ROS_DISTRO=kilted (.venv-kilted)"
	@echo "make bench  - latency / throughput benchmarks -> bench/results.json, bench/results.md"
	@echo "make colcon - colcon build of ros2_ws (refseg + refseg_msgs) against the venv"
	@echo "make clean  - remove build outputs (keeps the venv); make distclean also removes the venv"

setup: $(STAMPS)/install

# `--clear`: a venv left by an earlier set-up (another distro, or one with no record) starts empty.
$(STAMPS)/venv: $(REBUILD_VENV)
	$(call step,"1/5 virtual environment $(VENV) for ROS 2 $(ROS_DISTRO) ($(shell $(PYTHON) --version 2>&1))")
	@[ -z "$(REBUILD_VENV)" ] || echo "$(VENV) holds ROS 2 $(VENV_DISTRO) wheels: emptied and rebuilt for $(ROS_DISTRO)"
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 13) else "refseg needs Python 3.10-3.13, found %d.%d" % v)' || $(call fail,"python version")
	@[ "$$(uname -m)" = x86_64 ] || $(call fail,"the ROS 2 wheels on PyPI exist for x86_64 only")
	@$(PYTHON) -m venv --clear $(VENV) || $(call fail,"python -m venv (install python3-venv)")
	@$(PIP) install -q --upgrade "pip>=24" || $(call fail,"pip upgrade")
	@mkdir -p $(STAMPS) && echo $(ROS_DISTRO) > $@

$(STAMPS)/deps: $(STAMPS)/venv $(ROS_REQUIREMENTS) requirements/torch.txt requirements/base.txt requirements/dev.txt
	$(call step,"2/5 Python packages: ROS 2 $(ROS_DISTRO) wheels + torch + OpenCV + test tools (several GB the first time)")
	@$(PIP) install --progress-bar on -r requirements/torch.txt || $(call fail,"pip install torch")
	@$(PIP) install --progress-bar on -r $(ROS_REQUIREMENTS) -r requirements/base.txt -r requirements/dev.txt || $(call fail,"pip install ROS 2 wheels / deps")
	@$(PY) -c 'import rclpy, torch, torchvision, cv2' || $(call fail,"import check of rclpy / torch / cv2")
	@touch $@

$(STAMPS)/msgs: $(STAMPS)/deps $(wildcard refseg_msgs/msg/*.msg refseg_msgs/srv/*.srv) refseg_msgs/CMakeLists.txt refseg_msgs/package.xml
	$(call step,"3/5 build refseg_msgs (rosidl) and install it into $(VENV)")
	@command -v cmake >/dev/null || $(call fail,"cmake not found (apt install cmake)")
	@mkdir -p $(MSGS_BUILD)
	@cd $(MSGS_BUILD) && cmake $(CURDIR)/refseg_msgs -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_INSTALL_PREFIX=$(ABS_VENV) -DCMAKE_PREFIX_PATH=$(ABS_VENV) \
		-DPython3_EXECUTABLE=$(ABS_VENV)/bin/python -DBUILD_TESTING=OFF > cmake.log 2>&1 \
		|| (tail -40 cmake.log; $(call fail,"cmake configure of refseg_msgs; see $(MSGS_BUILD)/cmake.log"))
	@cmake --build $(MSGS_BUILD) -j $(JOBS) > $(MSGS_BUILD)/make.log 2>&1 \
		|| (tail -40 $(MSGS_BUILD)/make.log; $(call fail,"compile refseg_msgs; see $(MSGS_BUILD)/make.log"))
	@cmake --install $(MSGS_BUILD) > $(MSGS_BUILD)/install.log 2>&1 \
		|| $(call fail,"install refseg_msgs")
	@cd /tmp && $(ABS_VENV)/bin/python -c 'from refseg_msgs.msg import Segmentation; from refseg_msgs.srv import Segment' \
		|| $(call fail,"import refseg_msgs")
	@touch $@

$(STAMPS)/install: $(STAMPS)/msgs setup.py model/pyproject.toml package.xml resource/refseg $(wildcard launch/*.launch.py config/*)
	$(call step,"4/5 install refseg (node) and refseg_model (editable) and register refseg in the venv ament index")
	@$(PIP) install -q --no-deps --no-build-isolation -e model -e . || $(call fail,"pip install -e model -e .")
	@$(MAKE) --no-print-directory ament-register || $(call fail,"register refseg in $(VENV)/share/ament_index")
	$(call step,"5/5 check")
	@$(PY) -c 'import refseg_model, refseg_node, refseg_msgs.msg; print("refseg ready:", refseg_model.__file__)' \
		|| $(call fail,"import check")
	@touch $@

# The venv is the ROS 2 prefix: `get_package_share_directory('refseg')`, `ros2 launch refseg ...`
# and launch_ros's `Node(package='refseg', ...)` find the package here as after a colcon install.
# Symbolic links into the checkout (edits show at once); `ln -sfn` makes every run the same.
AMENT_SHARE := $(VENV)/share/refseg
ament-register:
	@mkdir -p $(VENV)/share/ament_index/resource_index/packages $(AMENT_SHARE) $(VENV)/lib/refseg
	@ln -sfn $(CURDIR)/resource/refseg $(VENV)/share/ament_index/resource_index/packages/refseg
	@for f in package.xml launch config; do \
		[ -L $(AMENT_SHARE)/$$f ] || rm -rf $(AMENT_SHARE)/$$f; \
		ln -sfn $(CURDIR)/$$f $(AMENT_SHARE)/$$f; done
	@for exe in refseg_node synthetic_camera speech_command; do \
		[ -x $(VENV)/bin/$$exe ] && ln -sfn ../../bin/$$exe $(VENV)/lib/refseg/$$exe || true; done
	@AMENT_PREFIX_PATH=$(ABS_VENV) $(PY) -c 'from ament_index_python.packages import get_package_share_directory as d; print("refseg registered:", d("refseg"))'

lint: setup
	@echo "[lint] ruff (pycodestyle, pyflakes, isort, pep257 docstrings)"
	@$(VENV)/bin/ruff check .
	@echo "[lint] package.xml files (well-formed, ROS package format 3)"
	@$(PY) tools/check_package_xml.py package.xml refseg_msgs/package.xml

unit: setup
	@$(PY) -m pytest $(PYTEST_ARGS)

test: setup lint unit

demo: setup
	@$(PY) tools/demo.py --out demo_out

bench: setup
	@$(PY) bench/run_bench.py --out bench

colcon: setup
	@cd ros2_ws && $(ABS_VENV)/bin/colcon build --event-handlers console_direct+

clean:
	rm -rf build ros2_ws/build ros2_ws/install ros2_ws/log demo_out $(STAMPS)/install $(STAMPS)/msgs

distclean: clean
	rm -rf $(VENV) .stamps

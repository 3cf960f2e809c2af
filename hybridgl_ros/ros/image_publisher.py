"""``hybridgl_image_publisher``: plays a folder of images or a video as a camera topic.

Publishes ``image`` (rgb8 or bgr8), and optionally ``depth`` (a folder of depth images paired
with the colour frames by sorted order: 16-bit PNG = 16UC1 millimetres, float TIFF or ``.npy``
= 32FC1 metres, uint16 ``.npy`` = 16UC1) and ``camera_info`` (from a camera_calibration YAML
file, or from ``focal_length_px`` with the principal point at the image centre). All messages
of one tick share one stamp. Topic names are relative: remap them.

    ros2 run hybridgl_ros hybridgl_image_publisher --ros-args -p source:=/data/pictures \
        -p rate_hz:=5.0 -r image:=/camera/color/image_raw
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from hybridgl_ros.cli import read_image_rgb
from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.ros.conversions import numpy_to_image
from hybridgl_ros.ros.shutdown import exit_bound

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
DEPTH_SUFFIXES = ('.png', '.tif', '.tiff', '.npy')
PARAMETERS = {
    'source': ('', 'A folder of images (played in name order), one image, or a video file'),
    'depth_source': ('', 'Optional folder of depth images paired with the frames by order'),
    'camera_info_file': ('', 'Optional camera_calibration YAML (camera_matrix, ...)'),
    'focal_length_px': (0.0, 'Without camera_info_file: fx = fy of a centred pinhole; 0 = none'),
    'frame_id': ('camera_color_optical_frame', 'frame_id of every published header'),
    'rate_hz': (10.0, 'Frames per second'),
    'loop': (True, 'Start again at the end; false = stop publishing after the last frame'),
    'encoding': ('rgb8', 'Encoding of the published image: rgb8 or bgr8'),
}


def image_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files of ``folder`` with one of ``suffixes``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)


def read_depth(path: Path) -> tuple[np.ndarray, str]:
    """A depth image file and its encoding: 16UC1 (uint16, mm) or 32FC1 (float32, m)."""
    import cv2

    depth = np.load(path) if path.suffix == '.npy' else cv2.imread(str(path),
                                                                   cv2.IMREAD_UNCHANGED)
    if depth is None or depth.ndim != 2:
        raise InvalidInputError(f'cannot read a one-channel depth image from {path}')
    if depth.dtype == np.uint16:
        return depth, '16UC1'
    if np.issubdtype(depth.dtype, np.floating):
        return depth.astype(np.float32), '32FC1'
    raise InvalidInputError(f'{path}: depth must be uint16 (mm) or float (m), not {depth.dtype}')


class FrameSource:
    """Colour frames from a folder, one image or a video, in order; ``rewind()`` restarts."""

    def __init__(self, path: str) -> None:
        self.path = Path(path).expanduser()
        if not path or not self.path.exists():
            raise InvalidInputError(f'source not found: {path!r} (parameter source)')
        self._files = (image_files(self.path, IMAGE_SUFFIXES) if self.path.is_dir() else
                       [self.path] if self.path.suffix.lower() in IMAGE_SUFFIXES else [])
        if self.path.is_dir() and not self._files:
            raise InvalidInputError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {self.path}')
        self._video = None
        self.index = 0
        self.rewind()

    def rewind(self) -> None:
        self.index = 0
        if not self._files:
            import cv2

            self._video = cv2.VideoCapture(str(self.path))
            if not self._video.isOpened():
                raise InvalidInputError(f'cannot open video {self.path}')

    def next(self) -> np.ndarray | None:
        """The next (H, W, 3) uint8 RGB frame, or None at the end."""
        if self._files:
            if self.index >= len(self._files):
                return None
            frame = read_image_rgb(self._files[self.index])
        else:
            import cv2

            ok, bgr = self._video.read()
            if not ok:
                return None
            frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self.index += 1
        return frame


def load_camera_info(path: str) -> CameraInfo:
    """A CameraInfo from a camera_calibration / camera_info_manager YAML file."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).expanduser().read_text())
        info = CameraInfo(width=int(data['image_width']), height=int(data['image_height']),
                          distortion_model=data.get('distortion_model', 'plumb_bob'))
        info.k = [float(v) for v in data['camera_matrix']['data']]
        info.d = [float(v) for v in data.get('distortion_coefficients', {}).get('data', [])]
        info.r = [float(v) for v in data.get('rectification_matrix', {}).get(
            'data', [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])]
        k = info.k
        info.p = [float(v) for v in data.get('projection_matrix', {}).get(
            'data', [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0])]
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise InvalidInputError(f'cannot read camera info from {path}: {exc!r}') from exc
    return info


def centred_camera_info(width: int, height: int, focal_px: float) -> CameraInfo:
    """A distortion-free pinhole CameraInfo with the principal point at the image centre."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    return CameraInfo(width=width, height=height, distortion_model='plumb_bob', d=[0.0] * 5,
                      k=[focal_px, 0.0, cx, 0.0, focal_px, cy, 0.0, 0.0, 1.0],
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                      p=[focal_px, 0.0, cx, 0.0, 0.0, focal_px, cy, 0.0, 0.0, 0.0, 1.0, 0.0])


class ImagePublisher(Node):
    """Publishes the frames of a folder or video at ``rate_hz`` (see the module docstring)."""

    def __init__(self, **kwargs) -> None:
        super().__init__('hybridgl_image_publisher', **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        if p['encoding'] not in ('rgb8', 'bgr8') or p['rate_hz'] <= 0:
            raise InvalidInputError('encoding must be rgb8 or bgr8 and rate_hz > 0')
        self._params = p
        self._frames = FrameSource(p['source'])
        self._depths = (image_files(Path(p['depth_source']).expanduser(), DEPTH_SUFFIXES)
                        if p['depth_source'] else [])
        self._info = load_camera_info(p['camera_info_file']) if p['camera_info_file'] else None
        qos = QoSProfile(depth=2)
        self._pubs = {'image': self.create_publisher(Image, 'image', qos),
                      'depth': self.create_publisher(Image, 'depth', qos),
                      'camera_info': self.create_publisher(CameraInfo, 'camera_info', qos)}
        self._timer = self.create_timer(1.0 / p['rate_hz'], self._tick)
        self.get_logger().info(f'playing {self._frames.path} at {p["rate_hz"]:g} Hz')

    def _tick(self) -> None:
        index = self._frames.index
        frame = self._frames.next()
        if frame is None and self._params['loop']:
            self._frames.rewind()
            index, frame = 0, self._frames.next()
        if frame is None:
            self.get_logger().info('end of the source: stopped publishing')
            self._timer.cancel()
            return
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._params['frame_id'])
        if self._params['encoding'] == 'bgr8':
            frame = np.ascontiguousarray(frame[:, :, ::-1])
        self._pubs['image'].publish(numpy_to_image(frame, self._params['encoding'], header))
        if self._depths:
            depth, encoding = read_depth(self._depths[index % len(self._depths)])
            self._pubs['depth'].publish(numpy_to_image(depth, encoding, header))
        info = self._camera_info(frame.shape[1], frame.shape[0])
        if info is not None:
            info.header = header
            self._pubs['camera_info'].publish(info)

    def _camera_info(self, width: int, height: int) -> CameraInfo | None:
        if self._info is not None:
            return self._info
        if self._params['focal_length_px'] > 0:
            return centred_camera_info(width, height, self._params['focal_length_px'])
        return None


def main(args=None) -> int:
    """Runs the publisher until SIGINT (``ros2 run hybridgl_ros hybridgl_image_publisher``)."""
    rclpy.init(args=args)
    node, code = None, 0
    try:
        node = ImagePublisher()
        rclpy.spin(node)
    except InvalidInputError as exc:
        rclpy.logging.get_logger('hybridgl_image_publisher').error(str(exc))
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        # SIGINT shuts the context down while a timer callback publishes: "publisher's
        # context is invalid" is that race, not a fault (seen once in a CI run)
        if rclpy.ok():
            raise
    finally:
        # a second SIGINT (a terminal's Ctrl-C reaches ros2 launch and its processes both) must
        # not cut the teardown with a traceback
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with exit_bound():  # a deadlock in Fast DDS's teardown cannot keep the process
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())

"""HybridGL demo: hybridgl_node + an image publisher playing a folder/video (+ RViz on request).

    ros2 launch hybridgl_ros demo.launch.py source:=/path/to/pictures focal_length_px:=525.0
    ros2 launch hybridgl_ros demo.launch.py source:=/path/to/checkout/demo_out/scenes \
        namespace:=robot1 \
        config_file:=$(ros2 pkg prefix hybridgl_ros)/share/hybridgl_ros/config/demo_scenes.yaml
    ros2 launch hybridgl_ros demo.launch.py use_image_publisher:=false use_rviz:=true \
        image_topic:=/camera/color/image_raw \
        depth_topic:=/camera/aligned_depth_to_color/image_raw \
        camera_info_topic:=/camera/aligned_depth_to_color/camera_info \
        sam_checkpoint:=/models/sam_vit_h_4b8939.pth sam_model_type:=vit_h \
        clip_weights:=/models/ViT-B-16.pt device:=cuda

Then, from another shell:
    ros2 service call /hybridgl_node/segment hybridgl_ros/srv/SegmentByText "{text: 'the red cup'}"

RViz is opt-in (use_rviz:=true). Its configuration is config/demo.rviz with the topics of this
launch (image_topic, the namespace) written in; without rviz2 installed the launch says so and
runs without it.
"""
import os
import tempfile

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = [
    ('namespace', '', 'Namespace of the node and the image publisher (e.g. robot1)'),
    ('image_topic', '/camera/color/image_raw', 'Colour image topic (sensor_msgs/Image)'),
    ('depth_topic', '/camera/aligned_depth_to_color/image_raw',
     'Depth registered to the colour image: 16UC1 mm or 32FC1 m'),
    ('camera_info_topic', '/camera/aligned_depth_to_color/camera_info',
     'CameraInfo of the depth image'),
    ('config_file', PathJoinSubstitution([FindPackageShare('hybridgl_ros'), 'config',
                                          'hybridgl.yaml']), 'Parameter file of hybridgl_node'),
    ('clip_weights', '', "CLIP ViT-B/16 weights file or 'openai'; '' = the embedded demo model"),
    ('clip_model', 'ViT-B-16', 'open_clip architecture name or model-config JSON'),
    ('sam_checkpoint', '', "SAM checkpoint file; '' = the embedded demo model"),
    ('sam_model_type', 'vit_h', 'SAM architecture: vit_h, vit_l or vit_b'),
    ('device', 'auto', 'auto, cpu or cuda'),
    ('use_image_publisher', 'true', 'Play `source` as the camera (false: use a real camera)'),
    ('source', '', 'Folder of images or a video file for the image publisher'),
    ('depth_source', '', 'Optional folder of depth images for the image publisher'),
    ('camera_info_file', '', 'Optional camera_calibration YAML for the image publisher'),
    ('focal_length_px', '0.0',
     'Image publisher without camera_info_file: fx = fy of a centred pinhole [px]; 0 = none'),
    ('rate_hz', '5.0', 'Frame rate of the image publisher'),
    ('use_rviz', 'false', 'Start RViz with config/demo.rviz (needs rviz2)'),
]
RVIZ_CAMERA_TOPIC = '/camera/color/image_raw'
RVIZ_NODE_PREFIX = '/hybridgl_node/'


def _string(name):
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def _enabled(context, name):
    """A true/false launch argument, read as launch's IfCondition reads it."""
    return LaunchConfiguration(name).perform(context).lower() in ('true', '1')


def _rviz(context):
    """RViz with the demo configuration rewritten for this launch's topics, if rviz2 exists."""
    from ament_index_python.packages import (
        PackageNotFoundError, get_package_prefix, get_package_share_directory)

    if not _enabled(context, 'use_rviz'):
        return []
    try:
        get_package_prefix('rviz2')
    except PackageNotFoundError:
        return [LogInfo(msg='use_rviz:=true but rviz2 is not installed: running without RViz')]
    namespace = LaunchConfiguration('namespace').perform(context).strip('/')
    prefix = f'/{namespace}' if namespace else ''
    image_topic = LaunchConfiguration('image_topic').perform(context)
    if not image_topic.startswith('/'):
        image_topic = f'{prefix}/{image_topic}'
    shipped = os.path.join(get_package_share_directory('hybridgl_ros'), 'config', 'demo.rviz')
    with open(shipped, encoding='utf-8') as stream:
        text = stream.read()
    text = text.replace(f'Value: {RVIZ_CAMERA_TOPIC}', f'Value: {image_topic}')
    text = text.replace(f'Value: {RVIZ_NODE_PREFIX}', f'Value: {prefix}{RVIZ_NODE_PREFIX}')
    handle, path = tempfile.mkstemp(prefix='hybridgl_demo_', suffix='.rviz')
    with os.fdopen(handle, 'w', encoding='utf-8') as stream:
        stream.write(text)
    return [Node(package='rviz2', executable='rviz2', name='rviz2', output='log',
                 arguments=['-d', path])]


def _image_publisher(context, camera_topics):
    """The image publisher playing ``source``; without a source, a line that says what to give."""
    if not _enabled(context, 'use_image_publisher'):
        return []
    if not LaunchConfiguration('source').perform(context).strip():
        return [LogInfo(msg='no image publisher: give source:=<folder of images or video file> '
                            'to play it as the camera, or use_image_publisher:=false with a '
                            'real camera on image_topic')]
    return [Node(
        package='hybridgl_ros', executable='hybridgl_image_publisher',
        name='hybridgl_image_publisher', output='screen',
        namespace=LaunchConfiguration('namespace'),
        parameters=[{'source': _string('source'), 'depth_source': _string('depth_source'),
                     'camera_info_file': _string('camera_info_file'),
                     'focal_length_px': ParameterValue(LaunchConfiguration('focal_length_px'),
                                                       value_type=float),
                     'rate_hz': ParameterValue(LaunchConfiguration('rate_hz'), value_type=float)}],
        remappings=camera_topics)]


def generate_launch_description():
    camera_topics = [('image', LaunchConfiguration('image_topic')),
                     ('depth', LaunchConfiguration('depth_topic')),
                     ('camera_info', LaunchConfiguration('camera_info_topic'))]
    node = Node(
        package='hybridgl_ros', executable='hybridgl_node', name='hybridgl_node', output='screen',
        namespace=LaunchConfiguration('namespace'),
        parameters=[LaunchConfiguration('config_file'), {
            'models.clip_weights': _string('clip_weights'),
            'models.clip_model': _string('clip_model'),
            'models.sam_checkpoint': _string('sam_checkpoint'),
            'models.sam_model_type': _string('sam_model_type'),
            'models.device': _string('device')}],
        remappings=camera_topics)
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS]
        + [node, OpaqueFunction(function=_image_publisher, args=[camera_topics]),
           OpaqueFunction(function=_rviz)])

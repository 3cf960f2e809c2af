"""HybridGL demo: hybridgl_node + an image publisher playing a folder/video + RViz.

    ros2 launch hybridgl_ros demo.launch.py source:=/path/to/pictures
    ros2 launch hybridgl_ros demo.launch.py source:=demo_out/scenes \
        config_file:=$(ros2 pkg prefix hybridgl_ros)/share/hybridgl_ros/config/demo_scenes.yaml
    ros2 launch hybridgl_ros demo.launch.py use_image_publisher:=false \
        image_topic:=/camera/color/image_raw \
        depth_topic:=/camera/aligned_depth_to_color/image_raw \
        camera_info_topic:=/camera/color/camera_info \
        sam_checkpoint:=/models/sam_vit_h_4b8939.pth sam_model_type:=vit_h \
        clip_weights:=/models/ViT-B-16.pt device:=cuda

Then, from another shell:
    ros2 service call /hybridgl_node/segment hybridgl_ros/srv/SegmentByText "{text: 'the red cup'}"
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = [
    ('image_topic', '/camera/color/image_raw', 'Colour image topic (sensor_msgs/Image)'),
    ('depth_topic', '/camera/aligned_depth_to_color/image_raw',
     'Depth aligned to the colour image: 16UC1 mm or 32FC1 m'),
    ('camera_info_topic', '/camera/color/camera_info', 'CameraInfo of the depth image'),
    ('config_file', PathJoinSubstitution([FindPackageShare('hybridgl_ros'), 'config',
                                          'hybridgl.yaml']), 'Parameter file of hybridgl_node'),
    ('clip_weights', '', "CLIP ViT-B/16 weights file; '' = the embedded demo model"),
    ('clip_model', 'ViT-B-16', 'open_clip architecture name or model-config JSON'),
    ('sam_checkpoint', '', "SAM checkpoint file; '' = the embedded demo model"),
    ('sam_model_type', 'vit_h', 'SAM architecture: vit_h, vit_l or vit_b'),
    ('device', 'auto', 'auto, cpu or cuda'),
    ('use_image_publisher', 'true', 'Play `source` as the camera (false: use a real camera)'),
    ('source', '', 'Folder of images or a video file for the image publisher'),
    ('depth_source', '', 'Optional folder of depth images for the image publisher'),
    ('camera_info_file', '', 'Optional camera_calibration YAML for the image publisher'),
    ('rate_hz', '5.0', 'Frame rate of the image publisher'),
    ('use_rviz', 'true', 'Start RViz with the demo configuration'),
]


def _string(name):
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def generate_launch_description():
    camera_topics = [('image', LaunchConfiguration('image_topic')),
                     ('depth', LaunchConfiguration('depth_topic')),
                     ('camera_info', LaunchConfiguration('camera_info_topic'))]
    node = Node(
        package='hybridgl_ros', executable='hybridgl_node', name='hybridgl_node', output='screen',
        parameters=[LaunchConfiguration('config_file'), {
            'models.clip_weights': _string('clip_weights'),
            'models.clip_model': _string('clip_model'),
            'models.sam_checkpoint': _string('sam_checkpoint'),
            'models.sam_model_type': _string('sam_model_type'),
            'models.device': _string('device')}],
        remappings=camera_topics)
    publisher = Node(
        package='hybridgl_ros', executable='hybridgl_image_publisher',
        name='hybridgl_image_publisher', output='screen',
        condition=IfCondition(LaunchConfiguration('use_image_publisher')),
        parameters=[{'source': _string('source'), 'depth_source': _string('depth_source'),
                     'camera_info_file': _string('camera_info_file'),
                     'rate_hz': ParameterValue(LaunchConfiguration('rate_hz'), value_type=float)}],
        remappings=camera_topics)
    rviz = Node(
        package='rviz2', executable='rviz2', name='rviz2', output='log',
        arguments=['-d', PathJoinSubstitution([FindPackageShare('hybridgl_ros'), 'config',
                                               'demo.rviz'])],
        condition=IfCondition(LaunchConfiguration('use_rviz')))
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS] + [node, publisher, rviz])

"""The launch file cannot run here (no `launch`/`launch_ros` on PyPI): check what can be checked.

Its syntax, that every package/executable it starts exists in CMakeLists.txt and pyproject.toml,
that every LaunchConfiguration it reads is declared, that the files it points at ship in
config/, and that the RViz config shows the node's outputs. Where launch_ros is importable (a
real ROS 2 install, `colcon test`), it is also imported and its description generated.
"""
import ast
import importlib.util
import re
import tomllib

import yaml

from ros_helpers import REPO

LAUNCH = REPO / 'launch' / 'demo.launch.py'


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, 'id', getattr(n.func, 'attr', None)) == name]


def _keyword(call, name):
    value = next((k.value for k in call.keywords if k.arg == name), None)
    return value.value if isinstance(value, ast.Constant) else None


def test_launch_file_parses():
    ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def test_launched_executables_are_installed_by_the_build():
    tree = ast.parse(LAUNCH.read_text())
    cmake = (REPO / 'CMakeLists.txt').read_text()
    scripts = tomllib.loads((REPO / 'pyproject.toml').read_text())['project']['scripts']
    package_name = re.search(r'<name>(\w+)</name>', (REPO / 'package.xml').read_text())[1]
    started = {(_keyword(c, 'package'), _keyword(c, 'executable')) for c in _calls(tree, 'Node')}
    assert ('hybridgl_ros', 'hybridgl_node') in started
    for package, executable in started:
        if package == 'rviz2':
            continue
        assert package == package_name
        assert f'"{executable}=hybridgl_ros.ros.' in cmake, executable  # lib/<pkg>/ wrapper
        assert executable in scripts


def test_every_launch_configuration_is_declared():
    source = LAUNCH.read_text()
    tree = ast.parse(source)
    used = {c.args[0].value for c in _calls(tree, 'LaunchConfiguration')
            if c.args and isinstance(c.args[0], ast.Constant)}
    used |= {c.args[0].id for c in _calls(tree, '_string') if isinstance(c.args[0], ast.Name)}
    used |= {c.args[1].value for c in _calls(tree, '_enabled')}
    declared = set(re.findall(r"^\s+\('(\w+)',", source, flags=re.M))
    assert used <= declared and used


def test_files_the_launch_uses_ship_in_config():
    source = LAUNCH.read_text()
    for name in ('hybridgl.yaml', 'demo.rviz'):
        assert f"'{name}'" in source and (REPO / 'config' / name).is_file()
    assert 'install(DIRECTORY launch config DESTINATION share/${PROJECT_NAME}' in (
        REPO / 'CMakeLists.txt').read_text()


def test_rviz_config_shows_the_node_outputs():
    rviz = yaml.safe_load((REPO / 'config' / 'demo.rviz').read_text())
    topics = {d['Topic']['Value'] for d in rviz['Visualization Manager']['Displays']
              if 'Topic' in d}
    assert {'/hybridgl_node/overlay', '/hybridgl_node/markers',
            '/hybridgl_node/centroid'} <= topics


#: The launch API the file may use (public names of launch / launch_ros since Humble).
PUBLIC_LAUNCH_API = {
    ('launch', 'LaunchDescription'), ('launch.actions', 'DeclareLaunchArgument'),
    ('launch.actions', 'LogInfo'), ('launch.actions', 'OpaqueFunction'),
    ('ament_index_python.packages', 'PackageNotFoundError'),
    ('ament_index_python.packages', 'get_package_prefix'),
    ('ament_index_python.packages', 'get_package_share_directory'),
    ('launch.conditions', 'IfCondition'), ('launch.substitutions', 'LaunchConfiguration'),
    ('launch.substitutions', 'PathJoinSubstitution'), ('launch_ros.actions', 'Node'),
    ('launch_ros.parameter_descriptions', 'ParameterValue'),
    ('launch_ros.substitutions', 'FindPackageShare')}


def test_launch_file_uses_the_public_launch_api_and_generates_where_it_exists():
    tree = ast.parse(LAUNCH.read_text())
    imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                for a in n.names}
    assert imported <= PUBLIC_LAUNCH_API, imported - PUBLIC_LAUNCH_API
    if importlib.util.find_spec('launch_ros') is not None:  # a real ROS 2 install
        spec = importlib.util.spec_from_file_location('demo_launch', LAUNCH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert len(module.generate_launch_description().entities) > 3


def _launch_arguments():
    tree = ast.parse(LAUNCH.read_text())
    table = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                 and n.targets[0].id == 'ARGUMENTS')
    return {item.elts[0].value: item.elts[1] for item in table.elts}


def _constant(name):
    tree = ast.parse(LAUNCH.read_text())
    return next(n.value.value for n in tree.body if isinstance(n, ast.Assign)
                and n.targets[0].id == name)


def test_rviz_is_opt_in_and_checked_for():
    arguments = _launch_arguments()
    assert arguments['use_rviz'].value == 'false'
    source = LAUNCH.read_text()
    assert "get_package_prefix('rviz2')" in source and 'PackageNotFoundError' in source


def test_the_image_publisher_gets_a_focal_length_and_both_nodes_a_namespace():
    arguments = _launch_arguments()
    assert arguments['focal_length_px'].value == '0.0' and 'namespace' in arguments
    source = LAUNCH.read_text()
    assert "'focal_length_px': ParameterValue(LaunchConfiguration('focal_length_px')" in source
    assert source.count("namespace=LaunchConfiguration('namespace')") == 2


def test_the_rviz_topics_the_launch_rewrites_are_those_of_demo_rviz():
    """The launch writes image_topic and the namespace into a copy of demo.rviz."""
    rviz = yaml.safe_load((REPO / 'config' / 'demo.rviz').read_text())
    topics = [d['Topic']['Value'] for d in rviz['Visualization Manager']['Displays']
              if 'Topic' in d]
    assert _constant('RVIZ_CAMERA_TOPIC') in topics
    prefix = _constant('RVIZ_NODE_PREFIX')
    assert sorted(t for t in topics if t.startswith(prefix)) == [
        f'{prefix}centroid', f'{prefix}markers', f'{prefix}overlay']

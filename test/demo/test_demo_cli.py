"""The demo sub-commands parse and run through ``register``."""
import argparse
import pickle

from hybridgl_ros.demo.cli import register


def _parser():
    parser = argparse.ArgumentParser(prog='hybridgl')
    register(parser.add_subparsers(dest='command', required=True))
    return parser


def test_make_scenes_command_writes_the_refcoco_layout(tmp_path, capsys):
    args = _parser().parse_args(['make-scenes', '--out', str(tmp_path), '--count', '2',
                                 '--seed', '4'])
    assert args.func(args) == 0
    assert len(list((tmp_path / 'images').glob('COCO_train2014_*.jpg'))) == 2
    with (tmp_path / 'refs(unc).p').open('rb') as stream:
        assert pickle.load(stream)
    assert '"images": 2' in capsys.readouterr().out


def test_make_scenes_scales_the_objects_and_refuses_a_scale_out_of_range(tmp_path):
    import json

    import pytest

    from hybridgl_ros.core.errors import HybridGLError

    args = _parser().parse_args(['make-scenes', '--out', str(tmp_path), '--count', '1',
                                 '--seed', '4', '--style', 'flat', '--object-scale', '0.7'])
    assert args.func(args) == 0
    info = json.loads((tmp_path / 'instances.json').read_text())['info']
    assert 'objects at 0.7 times their size' in info['description']
    args = _parser().parse_args(['make-scenes', '--out', str(tmp_path / 'turned'), '--count',
                                 '1', '--seed', '4', '--style', 'flat', '--any-angle'])
    assert args.func(args) == 0
    info = json.loads((tmp_path / 'turned' / 'instances.json').read_text())['info']
    assert info['description'].endswith('objects at any angle')
    args = _parser().parse_args(['make-scenes', '--out', str(tmp_path / 'x'),
                                 '--object-scale', '5'])
    with pytest.raises(HybridGLError, match='--object-scale must be within 0.2-2, not 5'):
        args.func(args)


def test_train_demo_models_options_parse():
    args = _parser().parse_args(['train-demo-models', '--only', 'sam', '--steps', '3',
                                 '--seed', '2', '--smoke', '--out', 'x', '--sam-from', 's.pth'])
    assert (args.only, args.steps, args.seed, args.smoke, args.out, args.sam_from) == (
        'sam', 3, 2, True, 'x', 's.pth')


def test_without_ros_the_ros_commands_say_so_in_one_line(monkeypatch, capsys, tmp_path):
    """Installed with ``pip install .`` alone, ``hybridgl_node``, ``hybridgl_image_publisher``
    and ``hybridgl demo`` (over ROS by default) stopped with rclpy's import traceback."""
    import importlib.util

    from hybridgl_ros.cli import main as hybridgl
    from hybridgl_ros.ros import node_main

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *args: None if name == 'rclpy' else found(name, *args))
    for command, run in (('hybridgl_node', node_main.main),
                         ('hybridgl_image_publisher', node_main.publisher)):
        assert run([]) == 1
        assert capsys.readouterr().err.startswith(
            f'{command} needs ROS 2 (rclpy), which is not installed here')
    assert hybridgl(['demo', '--count', '1', '--out', str(tmp_path / 'demo')]) == 2
    assert not (tmp_path / 'demo').exists()                          # before any work
    err = capsys.readouterr().err
    assert 'hybridgl demo needs ROS 2' in err and '--no-ros' in err

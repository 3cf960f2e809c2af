"""The library's Python ``logging`` (loggers under ``hybridgl_ros``) into a node's ROS logger.

The library logs with the standard ``logging`` module (it never imports ROS); a ROS process
configures no Python logging, so those lines went nowhere visible. :class:`LibraryLogBridge`
forwards them to the node's logger, so they appear in the console, in ``/rosout`` and in the
ROS log files, at the same severity, prefixed with the library module that wrote them.
"""
from __future__ import annotations

import logging

LIBRARY_LOGGER = 'hybridgl_ros'


class _RosHandler(logging.Handler):
    def __init__(self, ros_logger) -> None:
        super().__init__(logging.INFO)
        self._ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += '\n' + logging.Formatter().formatException(record.exc_info)
            text = f'{record.name.removeprefix(LIBRARY_LOGGER + ".")}: {text}'
            if record.levelno >= logging.ERROR:
                self._ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self._ros_logger.warning(text)
            elif record.levelno >= logging.INFO:
                self._ros_logger.info(text)
            else:
                self._ros_logger.debug(text)
        except Exception:  # logging must never break the caller (logging's own convention)
            self.handleError(record)


class LibraryLogBridge:
    """Forwards ``hybridgl_ros.*`` log records of INFO and above to ``ros_logger`` until
    :meth:`close`.

    Args:
        ros_logger: the node's logger (``node.get_logger()``).
    """

    def __init__(self, ros_logger) -> None:
        self._handler = _RosHandler(ros_logger)
        self._logger = logging.getLogger(LIBRARY_LOGGER)
        if self._logger.level == logging.NOTSET:  # a level set by the application stays
            self._logger.setLevel(logging.INFO)
        self._logger.addHandler(self._handler)

    def close(self) -> None:
        self._logger.removeHandler(self._handler)

"""Spoken commands for a refseg node: microphone or WAV files -> pocketsphinx -> its query.

``speech_command`` (``ros2 run refseg speech_command``) finds utterances in its ``source``, decodes
each offline with pocketsphinx (:mod:`refseg_node.speech.recognizer`) and publishes, to the
refseg node it serves (``refseg_node``: that node's name, relative to this node's namespace, or
its full name such as ``/head/refseg``; default ``refseg``):

- the recognised text on ``<refseg_node>/query`` (``/refseg/query`` by default,
  ``std_msgs/String``) when its confidence is at least ``confidence_threshold`` (otherwise it is
  only logged), and
- every utterance, sent or not, on ``<refseg_node>/speech`` (``/refseg/speech``,
  ``std_msgs/String`` holding one JSON object: ``text``, ``confidence``, ``sent``, ``source``,
  ``start``, ``end``, ``decode_seconds``, ``language_model``) for logging.

Parameters: ``source`` (``microphone``, a ``.wav`` file or a folder of them), ``language_model``
(``grammar``: commands shaped like the synthetic world's, with the words of ``checkpoint``'s
vocabulary and the command verbs the node's parser strips; ``words``: any sequence of those
words; ``general``: pocketsphinx's US English model), ``checkpoint`` (empty = the shipped
default, as the refseg node), ``confidence_threshold`` (0..1), ``audio_device`` (a sounddevice
input name or index; empty = the default), ``wait_for_subscriber`` (seconds to wait for the
refseg node to subscribe to its query topic before a file's first utterance), ``exit_when_done``
(stop after the last file). The microphone needs the optional ``sounddevice`` package and PortAudio.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from refseg_node.ros_io.ros_compat import ros_session
from refseg_node.speech.recognizer import (
    LANGUAGE_MODELS,
    SAMPLE_RATE,
    Recognizer,
    SpeechError,
    Utterance,
    UtteranceDetector,
    checkpoint_vocabulary,
    read_wav,
    utterances_of,
    wav_files,
)

MICROPHONE = "microphone"
# How to give recordings instead of the microphone, in each way of starting the executable.
RECORDINGS_HINT = ("speech_source:=FILE.wav (or a folder) with ros2 launch refseg "
                   "bringup.launch.py speech:=true; --ros-args -p source:=FILE.wav with ros2 run "
                   "or speech_command")
# Audio kept around a detected utterance of a file (the endpointer cuts close to the words).
CONTEXT_SECONDS = 0.25

PARAMETERS = {
    "source": MICROPHONE,
    "language_model": "grammar",
    "checkpoint": "",
    "confidence_threshold": 0.5,
    "refseg_node": "refseg",
    "audio_device": "",
    "wait_for_subscriber": 10.0,
    "exit_when_done": True,
}


def served_node(name: str, namespace: str) -> str:
    """Return the full name of refseg node ``name`` (relative to ``namespace`` unless absolute).

    ``served_node("refseg", "/")`` is ``/refseg``, ``served_node("refseg", "/head")``
    ``/head/refseg``, ``served_node("/wrist/refseg", "/head")`` ``/wrist/refseg``.
    """
    name = name.strip().rstrip("/")
    if not name:
        raise SpeechError("refseg_node must name the refseg node (for example refseg)")
    if name.startswith("/"):
        return name
    return f"{namespace.rstrip('/')}/{name}"


class SpeechCommandNode(Node):
    """Decode utterances and publish them as queries."""

    def __init__(self):
        """Declare the parameters, set up the recognizer and the publishers."""
        super().__init__("speech_command")
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.source = str(p["source"])
        self.threshold = float(p["confidence_threshold"])
        if not 0.0 <= self.threshold <= 1.0:
            raise SpeechError(f"confidence_threshold must be in [0, 1], got {self.threshold}")
        if p["language_model"] not in LANGUAGE_MODELS:
            raise SpeechError(f"language_model must be one of {LANGUAGE_MODELS}, "
                              f"got {p['language_model']!r}")
        self.audio_device = str(p["audio_device"])
        self.wait_for_subscriber = float(p["wait_for_subscriber"])
        self.refseg_node = served_node(str(p["refseg_node"]), self.get_namespace())
        self.exit_when_done = bool(p["exit_when_done"])
        vocabulary = (checkpoint_vocabulary(p["checkpoint"] or None)
                      if p["language_model"] != "general" else None)
        self.recognizer = Recognizer(vocabulary, p["language_model"])
        grammar = self.recognizer.grammar
        if grammar is not None:
            self.get_logger().info(
                f"grammar ({grammar.shape}): {len(grammar.words)} vocabulary words, "
                f"{len(grammar.verbs)} command verbs"
                + (f"; not pronounceable, left out: {' '.join(grammar.unpronounceable)}"
                   if grammar.unpronounceable else "")
                + (f"; in no word class (any modifier or head): {' '.join(grammar.unclassified)}"
                   if grammar.unclassified else ""))
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.query_pub = self.create_publisher(String, f"{self.refseg_node}/query", qos)
        self.result_pub = self.create_publisher(String, f"{self.refseg_node}/speech", qos)
        self.done = threading.Event()
        self.failed = False

    # one utterance ------------------------------------------------------------------------------
    def publish_utterance(self, utterance: Utterance, origin: str) -> bool:
        """Publish one decoded utterance; return whether it went out as a query."""
        sent = bool(utterance.text) and utterance.confidence >= self.threshold
        record = {"text": utterance.text, "confidence": round(utterance.confidence, 4),
                  "sent": sent, "source": origin, "start": round(utterance.start, 3),
                  "end": round(utterance.end, 3),
                  "decode_seconds": round(utterance.decode_seconds, 4),
                  "language_model": self.recognizer.language_model}
        try:
            if sent:
                self.query_pub.publish(String(data=utterance.text))
            self.result_pub.publish(String(data=json.dumps(record)))
        except Exception as err:  # noqa: BLE001 - one failed publish must not stop listening
            self.get_logger().warning(f"publish failed: {err}")
            return False
        if sent:
            self.get_logger().info(f"heard {utterance.text!r} (confidence "
                                   f"{utterance.confidence:.2f}) -> query")
        else:
            self.get_logger().info(
                f"not sent: {utterance.text!r} (confidence {utterance.confidence:.2f} < "
                f"{self.threshold:.2f})" if utterance.text else "not sent: no words recognised")
        return sent

    # sources ------------------------------------------------------------------------------------
    def run_files(self) -> None:
        """Decode every utterance of every WAV file of ``source``, in order."""
        files = wav_files(self.source)
        self._wait_for_subscriber()
        for path in files:
            if not rclpy.ok():
                return
            try:
                samples = read_wav(path)
            except SpeechError as err:
                self.get_logger().error(str(err))
                continue
            found = utterances_of(samples)
            if not found:
                self.get_logger().info(f"{path.name}: no speech found")
            margin = int(CONTEXT_SECONDS * SAMPLE_RATE)
            for start, speech in found:
                begin = int(round(start * SAMPLE_RATE))
                first = max(0, begin - margin)
                last = min(len(samples), begin + len(speech) + margin)
                utterance = self.recognizer.decode(samples[first:last], first / SAMPLE_RATE)
                self.publish_utterance(utterance, str(path))

    def run_microphone(self) -> None:
        """Listen to the microphone until shutdown."""
        sounddevice = open_microphone_library()
        device = int(self.audio_device) if self.audio_device.isdigit() else (
            self.audio_device or None)
        try:
            sounddevice.check_input_settings(device=device, channels=1, dtype="int16",
                                             samplerate=SAMPLE_RATE)
        except Exception as err:  # noqa: BLE001 - sounddevice raises several kinds
            raise SpeechError(f"no usable audio input device ({err}); list them with "
                              "`python -m sounddevice`, pick one with -p audio_device:=NAME, or "
                              f"decode recordings: {RECORDINGS_HINT}") from None
        detector = UtteranceDetector()
        blocks: queue.Queue = queue.Queue()

        def callback(data, frames, timing, status):
            blocks.put(np.frombuffer(bytes(data), dtype=np.int16).copy())
        with sounddevice.RawInputStream(samplerate=SAMPLE_RATE, channels=1, dtype="int16",
                                        blocksize=detector.frame_samples, device=device,
                                        callback=callback):
            self.get_logger().info("listening on the microphone")
            while rclpy.ok() and not self.done.is_set():
                try:
                    block = blocks.get(timeout=0.2)
                except queue.Empty:
                    continue
                for start, speech in detector.feed(block):
                    self.publish_utterance(self.recognizer.decode(speech, start), MICROPHONE)

    def _wait_for_subscriber(self) -> None:
        """Wait until the refseg node subscribes to its query topic and is matched.

        Discovery matches subscribers one by one: a logger or ``ros2 topic echo`` may match
        before the refseg node does, and a file's command sent then would miss the node.
        """
        end = time.monotonic() + self.wait_for_subscriber
        topic = self.query_pub.topic_name
        namespace, _, name = self.refseg_node.rpartition("/")
        namespace = namespace or "/"
        while time.monotonic() < end:
            listed = self.get_subscriptions_info_by_topic(topic)
            matched = self.query_pub.get_subscription_count()
            if matched and matched >= len(listed) and any(
                    i.node_name == name and i.node_namespace == namespace for i in listed):
                return
            time.sleep(0.05)
        self.get_logger().warning(f"node {self.refseg_node} subscribes to {topic} after "
                                  f"{self.wait_for_subscriber:.0f} s; publishing anyway")

    def run(self) -> None:
        """Work through the source (in a thread beside the executor)."""
        try:
            if self.source == MICROPHONE:
                self.run_microphone()
            else:
                self.run_files()
                self.get_logger().info("all files decoded")
        except SpeechError as err:
            self.get_logger().error(str(err))
            self.failed = True
        finally:
            self.done.set()


def open_microphone_library():
    """Import sounddevice, or raise :class:`SpeechError` saying what is missing."""
    try:
        import sounddevice
    except ImportError:
        raise SpeechError("the microphone needs the sounddevice package (pip install "
                          "sounddevice) and PortAudio (apt-get install libportaudio2); or "
                          f"decode recordings: {RECORDINGS_HINT}") from None
    except OSError as err:  # sounddevice is there but PortAudio is not
        raise SpeechError(f"the microphone needs PortAudio ({err}): apt-get install "
                          f"libportaudio2; or decode recordings: {RECORDINGS_HINT}") from None
    return sounddevice


def main(args=None) -> int:
    """Run ``speech_command`` until its files are decoded or Ctrl-C; 1 when it cannot run."""
    status = 0
    try:
        with ros_session(args):
            try:
                node = SpeechCommandNode()
            except SpeechError as err:
                print(f"speech_command: {err}", file=sys.stderr)
                return 1
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            worker = threading.Thread(target=node.run, daemon=True)
            worker.start()
            try:
                while rclpy.ok():
                    executor.spin_once(timeout_sec=0.1)
                    if node.done.is_set() and (node.failed or node.exit_when_done):
                        # Let the last messages be delivered to reliable readers.
                        node.query_pub.wait_for_all_acked(Duration(seconds=5))
                        node.result_pub.wait_for_all_acked(Duration(seconds=5))
                        break
            finally:
                node.done.set()
                status = 1 if node.failed else 0
                executor.shutdown()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return status


if __name__ == "__main__":
    sys.exit(main())

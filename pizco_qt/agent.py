"""Agent: Pizco's communicating object, composed of four parts.

* ``answerer`` (:class:`~pizco_qt.answering.Answerer`): the ROUTER socket and
  the worker thread that answers requests (``on_request``) and runs
  ``on_subscribe``/``on_unsubscribe`` in arrival order;
* ``publisher`` (:class:`~pizco_qt.publishing.Publisher`): the XPUB socket on
  the I/O thread (notifications, heartbeats, subscription events);
* ``requester`` (:class:`~pizco_qt.requesting.Requester`): synchronous requests
  on a DEALER per calling thread, non-blocking ones on the I/O thread;
* ``subscriber`` (:class:`~pizco_qt.subscribing.Subscriber`): the SUB socket on
  the I/O thread.

An agent that binds has all four; :class:`~pizco_qt.server.Server` is such an
agent. A proxy has no agent: its core holds a requester and a subscriber.

Thread affinity: public methods may be called from any thread.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

import concurrent.futures
import zmq

from . import forking, iothread, limits, replies
from .config import Settings
from .answering import Answerer
from .delivery import Target, current_target
from .endpoints import connectable, normalize, normalize_optional
from .errors import PizcoError
from .protocol import (ACK_PREFIX, CAPABILITIES, FUTURE_TOPIC, HEARTBEAT_TOPIC, Envelope, Protocol,  # noqa: F401
                       _id_prefix, new_msgid)
from .publishing import Publisher, SubscriberCounts
from .requesting import Requester
from .security import CurveConfig, check_bind_allowed, register_curve_server, unregister_curve_server
from .subscribing import Subscriber

logger = logging.getLogger(__name__)

__all__ = ["Agent", "CAPABILITIES", "ACK_PREFIX", "HEARTBEAT_TOPIC", "FUTURE_TOPIC"]

#: Agents not yet stopped (a forked child starts with none: see ``forking.live_set``).
_live_agents: "weakref.WeakSet[Agent]" = forking.live_set()


class Agent:
    """Sends and serves requests, publishes and subscribes to notifications.

    Parameters
    ----------
    rep_endpoint, pub_endpoint : str or (host, port)
        Endpoints to bind; port 0 picks a free port (``.rep_endpoint`` /
        ``.pub_endpoint`` give the bound ones). Any ZMQ transport works; a
        ``(host, port)`` tuple means ``tcp://host:port``.
    protocol : Protocol, optional
        Key and serializer; default from ``PZC_KEY`` and ``PZC_SER``.
    allow_insecure : bool
        Allow binding a non-loopback address with no key and no CURVE (logged as a WARNING).
    curve : CurveConfig, optional
        CURVE encryption: the server's key pair and allowed clients when binding,
        the server's public key for outgoing requests and subscriptions.
    settings : Settings, optional
        Timeouts, heartbeat, queue lengths... (default ``Settings.from_environment()``),
        handed to every part.

    Raises
    ------
    BindError
        If the endpoints cannot be bound (``InsecureBind`` if binding would be insecure).

    Thread affinity: any thread; hooks run on the agent's worker thread.
    """

    def __init__(
        self,
        rep_endpoint: Optional[str] = "tcp://127.0.0.1:0",
        pub_endpoint: Optional[str] = "tcp://127.0.0.1:0",
        protocol: Optional[Protocol] = None,
        *,
        allow_insecure: bool = False,
        curve: Optional[CurveConfig] = None,
        settings: Optional[Settings] = None,
        _bind: bool = True,
    ) -> None:
        #: Every tunable, read from the environment once (when not given).
        self.settings = settings = settings if settings is not None else Settings.from_environment()
        self.protocol = protocol if protocol is not None else Protocol.from_settings(settings)
        self.curve = curve
        self._zap_domain: Optional[str] = None
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._stopper: Optional[threading.Thread] = None
        self._sub_pub: Dict[Tuple[str, str], Tuple[str, Optional[str]]] = {}
        self.rep_endpoint: str = ""
        self.pub_endpoint: str = ""
        #: The process that created this agent (see ``pizco_qt.forking``).
        self._owner_pid = forking.pid
        if _bind:  # before any socket or thread: a clear error, never a libzmq abort
            limits.check_headroom(self.settings.fd_per_server, f"create a server at {rep_endpoint}")
        else:
            limits.check_headroom(self.settings.fd_per_proxy, "create a client agent")
        self._io = iothread.acquire()
        self._sender = f"urn:pizco_qt:{_id_prefix}:{os.getpid()}:{id(self):x}"
        #: The requesting part (synchronous and non-blocking requests).
        self.requester = Requester(self.protocol, self._io, curve, self._sender, settings)
        self.requester.owner = f"this {type(self).__name__}"
        #: The subscribing part (the SUB socket).
        self.subscriber = Subscriber(self.protocol, self._io, curve, settings)
        #: The answering part (ROUTER and worker thread); None until bound.
        self.answerer: Optional[Answerer] = None
        #: The publishing part (XPUB); None until bound.
        self.publisher: Optional[Publisher] = None
        _live_agents.add(self)
        if _bind:
            try:
                self._bind(normalize_optional(rep_endpoint, "tcp://127.0.0.1:0"),
                           normalize_optional(pub_endpoint, "tcp://127.0.0.1:0"), allow_insecure)
            except BaseException:
                self.stop()
                raise

    @property
    def io(self) -> iothread.IOThread:
        """The I/O thread that owns this agent's long-lived sockets (its ``call_later`` and ``submit``)."""
        return self._io

    @property
    def sender(self) -> str:
        """This agent's identity in message headers: its REP endpoint once bound."""
        return self._sender

    @sender.setter
    def sender(self, value: str) -> None:
        self._sender = value
        self.requester.sender = value
        for part in (self.answerer, self.publisher):
            if part is not None:
                part.sender = value

    # ------------------------------------------------------------------ binding
    def _bind(self, rep: str, pub: str, allow_insecure: bool) -> None:
        for ep in (rep, pub):
            check_bind_allowed(ep, self.protocol, self.curve is not None, allow_insecure)
        if self.curve is not None:
            self._zap_domain = register_curve_server(self.curve, iothread.context())
        answerer = self.answerer = Answerer(self.protocol, self._serve_request, self._configure_server_socket,
                                            self.settings)
        answerer.observer_protocol = self._observer_protocol
        if self._curve_roles:
            answerer.role_of_key = self._role_of_key
        publisher = self.publisher = Publisher(self._publishing_protocol(), self._io, self._configure_server_socket,
                                               self._subscription_changed, answerer.submit,
                                               self._topic_wanted, answerer.alive, self.settings)
        publisher.sender = answerer.sender = self._sender
        self.pub_endpoint = self._io.call(lambda: publisher.bind(pub), timeout=self.settings.thread_start_timeout)
        self.rep_endpoint = answerer.bind(rep)
        self.sender = self.rep_endpoint
        publisher.start_heartbeat()

    def _configure_server_socket(self, sock: zmq.Socket) -> None:
        """Options of the ROUTER and XPUB sockets; runs on the socket's owner thread."""
        sock.setsockopt(zmq.MAXMSGSIZE, self.settings.max_message)
        if self.curve is not None and self._zap_domain is not None:
            self.curve.configure_server(sock, self._zap_domain)

    #: A second key whose signed requests are an observer's (a Server's ``observer_key``).
    _observer_protocol: Optional[Protocol] = None
    #: Whether requests carry their CURVE client's key (a CurveConfig with ``observers_dir``).
    _curve_roles = False

    def _role_of_key(self, user: Optional[str]) -> Optional[str]:
        """The role of a request signed with the main key, from its CURVE client key (worker thread)."""
        return None

    def _publishing_protocol(self) -> Protocol:
        """The protocol publications are signed with (a Server's observer key, if it has one)."""
        return self.protocol

    def _serve_request(self, env: Envelope, content: Any) -> Any:
        """Produce the reply content (worker thread; Server overrides it to add thread affinity)."""
        return self.on_request(env.sender, env.topic, content, env.msgid)

    def _topic_wanted(self, topic: str) -> bool:
        """Whether a new subscription to ``topic`` is counted and handed to ``on_subscribe``
        (I/O thread). A plain agent takes every topic; a Server only its signals."""
        return True

    def _subscription_changed(self, topic: str, count: int, subscribed: bool, done: Callable[[], None]) -> None:
        """The publisher saw a (un)subscription: run the hook on the worker thread (I/O thread)."""
        def event() -> None:
            try:
                if subscribed:
                    self.on_subscribe(topic, count)
                else:
                    self.on_unsubscribe(topic, count)
            finally:
                done()

        if self.answerer is not None:
            self.answerer.submit(event)

    # ------------------------------------------------------------------ overridable hooks
    def on_request(self, sender: str, topic: str, content: Any, msgid: str) -> Any:
        """Answer a request (worker thread); the return value is the reply's content.

        The base agent answers ``'info'`` (its endpoints) and ``'stop'`` (stops it)
        and echoes any other content back unchanged, as Pizco's agent did.
        """
        if content == "info":
            return self._info()
        if content == "stop":
            if self.answerer is not None:
                self.answerer.submit(self._stop_from_worker)
            return "stopping"
        return content

    def _info(self) -> Dict[str, Any]:
        return {"rep_endpoint": self.rep_endpoint, "pub_endpoint": self.pub_endpoint,
                "capabilities": list(CAPABILITIES), "heartbeat": self.settings.heartbeat, "pid": os.getpid()}

    def _stop_from_worker(self) -> None:
        # stop() joins the worker, so it runs in a thread of its own; a later
        # stop() from elsewhere waits for this one to end
        stopper = threading.Thread(target=self.stop, name="pizco-stopper", daemon=True)
        self._stopper = stopper
        stopper.start()

    def on_notification(self, sender: str, topic: str, content: Any, msgid: str) -> None:
        """Called for notifications of subscriptions made without a callback."""

    def on_subscribe(self, topic: str, count: int) -> None:
        """A SUB socket subscribed to ``topic``; ``count`` subscribers now (worker thread)."""

    def on_unsubscribe(self, topic: str, count: int) -> None:
        """A SUB socket unsubscribed from ``topic``; ``count`` subscribers left (worker thread)."""

    def _check_process(self) -> None:
        """ProxyClosed if this agent was inherited across os.fork() (it cannot work here)."""
        if self._owner_pid != forking.pid:
            forking.check_owner(self._owner_pid, f"this {type(self).__name__} ({self.rep_endpoint or self.sender})")

    # ------------------------------------------------------------------ requests
    def request_frames(self, endpoint: str, content: Any, timeout: Optional[float] = None,
                       action: str = "request", serializer: Optional[str] = None,
                       compact: bool = False) -> List[bytes]:
        """Send a request and return the raw (not yet checked nor decoded) reply frames.

        ``compact=True`` (only for servers that advertise the ``compact``
        capability) sends a small request as one compact frame.
        """
        if self._owner_pid != forking.pid:
            self._check_process()
        if self._stopped:
            raise PizcoError(f"this agent is stopped; cannot reach {endpoint}")
        return self.requester.request_frames(endpoint, content, timeout, action, serializer, compact)

    def request(self, recipient: str, content: Any, timeout: Optional[float] = None) -> Any:
        """Send ``content`` to the agent at ``recipient`` and return its reply content.

        Raises
        ------
        RemoteTimeout
            No reply within ``timeout`` (default ``PZC_TIMEOUT`` or 10 s).
        ProtocolError
            The reply is badly signed or cannot be decoded.
        """
        return replies.decode(self.protocol, self.request_frames(normalize(recipient), content, timeout))

    def request_async(self, endpoint: str, content: Any,
                      on_reply: Optional[Callable[[List[bytes]], Any]] = None,
                      serializer: Optional[str] = None) -> "concurrent.futures.Future[Any]":
        """Send a request without waiting; the Future resolves with the reply content.

        ``on_reply(frames)`` (run on the dispatcher thread) may turn the raw reply
        into the Future's result; by default the decoded content is the result.
        """
        self._check_process()
        return self.requester.request_async(endpoint, content, on_reply, serializer)

    def forget_async(self, fut: concurrent.futures.Future) -> None:
        """Stop waiting for the reply of a non-blocking request (it will be discarded)."""
        self.requester.forget(fut)

    # ------------------------------------------------------------------ subscriptions
    def subscribe(self, rep_endpoint: str, topic: str, callback: Optional[Callable[..., Any]] = None,
                  pub_endpoint: Optional[str] = None) -> None:
        """Receive notifications on ``topic`` from the agent at ``rep_endpoint``.

        ``callback(sender, topic, content, msgid)`` (default ``on_notification``) runs
        on the subscribing thread's Qt loop if it has one, else on the dispatcher.
        """
        self._check_process()
        rep_endpoint = normalize(rep_endpoint)
        pub_endpoint = normalize_optional(pub_endpoint)
        sender, pub, ack = rep_endpoint, pub_endpoint, False
        if pub is None:
            info = self.request(rep_endpoint, "info")
            sender = info.get("rep_endpoint", rep_endpoint)
            pub = connectable(info["pub_endpoint"], rep_endpoint)
            ack = "ack" in info.get("capabilities", ())
        sink = self._delivering_sink(current_target(), callback or self.on_notification)
        subscriber = self.subscriber
        self._io.call(lambda: (subscriber.connect(pub), subscriber.add(sender, topic, sink)))
        self._sub_pub[(rep_endpoint, topic)] = (sender, pub)
        if ack:
            subscriber.request_ack(sender, self.settings.timeout)

    def _delivering_sink(self, target: Target, cb: Callable[..., Any]) -> Callable[[Envelope, List[bytes]], None]:
        loads = self.protocol.loads

        def sink(env: Envelope, frames: List[bytes]) -> None:
            def deliver() -> None:
                content = loads(env.serializer, frames[2], frames[5:])
                cb(env.sender, env.topic, content, env.msgid)
            target.post(deliver)
        return sink

    def unsubscribe(self, rep_endpoint: str, topic: str, pub_endpoint: Optional[str] = None) -> None:
        """Stop receiving ``topic`` from the agent at ``rep_endpoint``."""
        self._check_process()
        rep_endpoint = normalize(rep_endpoint)
        pub_endpoint = normalize_optional(pub_endpoint)
        sender, pub = self._sub_pub.pop((rep_endpoint, topic), (rep_endpoint, pub_endpoint))
        subscriber = self.subscriber
        self._io.call(lambda: (subscriber.remove(sender, topic), pub and subscriber.disconnect(pub)))

    # ------------------------------------------------------------------ publishing
    def publish(self, topic: str, content: Any) -> None:
        """Publish ``content`` on ``topic`` (any thread; never blocks; nothing if not bound)."""
        self._check_process()
        if self.publisher is not None:
            self.publisher.publish(topic, content)

    @property
    def subscribers(self) -> SubscriberCounts:
        """Topic -> number of SUB sockets subscribed to it (a live, read-only mapping).

        The same counts that ``on_subscribe`` / ``on_unsubscribe`` receive; a
        topic without subscribers reads 0. Empty for an agent that does not bind.
        """
        return self.publisher.subscribers if self.publisher is not None else SubscriberCounts({})

    def subscriber_count(self, topic: str) -> int:
        """How many SUB sockets subscribe to ``topic`` of this agent.

        The count changes after ``on_subscribe``/``on_unsubscribe`` has run, so once it
        shows a subscriber, the server is connected to the served signal.
        """
        return self.publisher.subscriber_count(topic) if self.publisher is not None else 0

    # ------------------------------------------------------------------ stopping
    @property
    def stopped(self) -> bool:
        """Whether ``stop()`` has been called."""
        return self._stopped

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop serving and close every socket (idempotent; returns within ``timeout``,
        default ``settings.stop_timeout``).

        If a remote 'stop' request is being carried out, this waits for it to end.
        """
        if forking.inherited(self._owner_pid):
            self._stopped = True  # inherited across fork: its threads and sockets are the parent's
            return
        if timeout is None:
            timeout = self.settings.stop_timeout
        with self._stop_lock:
            already = self._stopped
            self._stopped = True
        if already:
            stopper = self._stopper
            if stopper is not None and stopper is not threading.current_thread():
                stopper.join(timeout)
            return
        deadline = time.monotonic() + timeout
        self._before_stop()
        try:
            self._io.call(self._close_io_sockets, timeout=max(self.settings.poll_interval, deadline - time.monotonic()))
        except Exception:
            logger.debug("closing I/O sockets", exc_info=True)
        if self.answerer is not None:
            self.answerer.stop(deadline - time.monotonic())
        self.requester.close()
        if self._zap_domain is not None:
            unregister_curve_server(self._zap_domain)
        _live_agents.discard(self)
        iothread.release()

    def _before_stop(self) -> None:
        """Hook: runs first in stop() (unregister, cancel futures...)."""

    def _close_io_sockets(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        self.subscriber.close()
        self.requester.close_sockets()


def stop_all_agents() -> None:
    """Stop every live agent (exit hook)."""
    for agent in list(_live_agents):
        try:
            agent.stop(timeout=agent.settings.exit_stop_timeout)
        except Exception:
            logger.debug("stopping an agent at exit", exc_info=True)


import atexit as _atexit  # noqa: E402  (registered after the I/O thread's hook, so it runs first)

_atexit.register(stop_all_agents)

"""Killing one Rasa instance (SIGKILL) during a load run through nginx loses no message and doubles none.

Conversations go through nginx's round robin, so each one is served by both
instances in turn. One instance is killed after a third of the messages; the
run goes on. nginx re-sends a message whose instance died to the survivor,
with the same request id, so a turn the dead instance had completed is
answered from the tracker store, not run again. Afterwards every message must
have been answered and be stored exactly once, in order, followed by exactly
the replies the customer saw.

Slack users talk at the same time, through nginx too: their events are stored
in the durable inbox before the 200, and the survivor runs the ones the
killed instance had taken (after their lease). Each Slack message must be
stored exactly once, in order.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import List, Optional

import pytest
import requests

from channels.rest import anonymous_sender_id
from supportbot.cluster import Cluster
from tests.channels.conftest import SLACK_SIGNING_SECRET, slack_signature_headers, unique
from tests.channels.fakes import FakeSlackApi
from tests.channels.test_slack import message_event
from tests.conftest import REPORT_LINES, wait_for
from tests.scale_out.conftest import stored_events
from tests.scale_out.test_shared_state import assert_stored_once_in_order, reply_texts, turns

pytestmark = pytest.mark.slow

CONVERSATIONS = 10
SLACK_USERS = 4
SLACK_MESSAGES = 4
#: How long a Slack user waits for the reply before writing again (a turn left by the
#: killed instance is taken over after the inbox lease, 30 s).
SLACK_PATIENCE_SECONDS = 45
QUESTIONS = [
    "how do I close my account?",
    "what is two-factor authentication?",
    "how can I add a user to my account?",
    "what account types are there?",
    "how do I change the currency of my account?",
    "I forgot my password",
    "how do I create an account?",
    "how do I remove a user?",
]


@dataclass
class Sent:
    text: str
    status: int
    replies: List[str]
    upstream: str
    after_kill: bool


@dataclass
class Conversation:
    sender: str
    sent: List[Sent] = field(default_factory=list)


@dataclass
class SlackUser:
    user: str
    channel: str
    statuses: List[int] = field(default_factory=list)


def slack_user_talks(cluster: Cluster, slack: FakeSlackApi, person: SlackUser) -> None:
    """Direct messages through nginx, each after the reply to the previous one (or the patience)."""
    for number, text in enumerate(QUESTIONS[:SLACK_MESSAGES], start=1):
        body = json.dumps(message_event(text, person.user, person.channel)).encode()
        headers = dict(slack_signature_headers(body, SLACK_SIGNING_SECRET), **{"Content-Type": "application/json"})
        try:
            status = requests.post(f"{cluster.url}/webhooks/slack/webhook", data=body, headers=headers,
                                   timeout=60).status_code
        except requests.RequestException:
            status = 0
        person.statuses.append(status)
        wait_for(lambda: len(slack.calls_where(slack.messages_to(person.channel))) >= number,
                 timeout=SLACK_PATIENCE_SECONDS)


def test_killing_an_instance_mid_load_loses_no_message(cluster_to_break: Cluster, fake_slack_api: FakeSlackApi):
    cluster = cluster_to_break
    killed_url = cluster.rasa_urls[0].removeprefix("http://")
    survivor_url = cluster.rasa_urls[1].removeprefix("http://")
    conversations = [Conversation(f"kill-{uuid.uuid4().hex}") for _ in range(CONVERSATIONS)]
    total = CONVERSATIONS * len(QUESTIONS)
    answered = threading.Semaphore(0)
    killed = threading.Event()

    def chat(conversation: Conversation) -> None:
        with requests.Session() as session:
            for text in QUESTIONS:
                after_kill = killed.is_set()
                try:
                    response = session.post(f"{cluster.url}/webhooks/rest/webhook",
                                            json={"sender": conversation.sender, "message": text},
                                            timeout=60)
                    status = response.status_code
                    replies = reply_texts(response.json()) if status == 200 else []
                    # the instance that answered (nginx lists the ones it tried first before it)
                    upstream = response.headers.get("X-Upstream", "").split(", ")[-1]
                except requests.RequestException:
                    status, replies, upstream = 0, [], ""
                conversation.sent.append(Sent(text, status, replies, upstream, after_kill))
                answered.release()

    slack_users = [SlackUser(unique("U"), unique("D")) for _ in range(SLACK_USERS)]
    threads = [threading.Thread(target=chat, args=(c,)) for c in conversations]
    threads += [threading.Thread(target=slack_user_talks, args=(cluster, fake_slack_api, person))
                for person in slack_users]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for _ in range(total // 3):
        answered.acquire()
    cluster.kill_rasa(0)
    killed.set()
    for thread in threads:
        thread.join(timeout=300)
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), "a conversation hung"

    everything = [s for c in conversations for s in c.sent]
    failed = [s for s in everything if s.status != 200]
    REPORT_LINES.append(
        f"scale-out: {len(everything) - len(failed)}/{len(everything)} messages answered through nginx "
        f"with one of two Rasa instances killed mid-run ({len(failed)} lost), {elapsed:.1f} s")
    assert failed == [], [(s.text, s.status) for s in failed]  # nothing lost in flight

    # the surviving instance keeps answering: everything sent after the kill was answered by it
    after = [s for s in everything if s.after_kill]
    assert after and all(s.status == 200 and s.upstream == survivor_url for s in after), \
        [(s.status, s.upstream) for s in after if s.status != 200 or s.upstream != survivor_url]
    moved = [c for c in conversations
             if any(s.upstream == killed_url and not s.after_kill for s in c.sent)
             and any(s.after_kill and s.status == 200 for s in c.sent)]
    assert moved, "no conversation served by the killed instance went on on the other one"

    for conversation in conversations:
        events = stored_events(cluster, anonymous_sender_id(conversation.sender, "127.0.0.1"))
        assert_stored_once_in_order(events)
        stored = turns(events)
        stored_texts = [text for text, _ in stored]
        assert len(stored_texts) == len(set(stored_texts)), "a message was stored twice"
        # what is stored is exactly what was sent, in order, each with the replies the customer saw
        assert stored == [(sent.text, sent.replies) for sent in conversation.sent]

    # Slack: every event accepted (through nginx's retry), and every one run exactly once, in order
    sent_texts = QUESTIONS[:SLACK_MESSAGES]
    assert [person.statuses for person in slack_users] == [[200] * SLACK_MESSAGES] * SLACK_USERS

    def slack_texts(person: SlackUser) -> List[str]:
        return [text for text, _ in turns(stored_events(cluster, person.user))]

    assert wait_for(lambda: all(len(slack_texts(p)) >= SLACK_MESSAGES for p in slack_users), timeout=90), \
        [slack_texts(p) for p in slack_users]
    for person in slack_users:
        assert slack_texts(person) == sent_texts
        assert_stored_once_in_order(stored_events(cluster, person.user))
    REPORT_LINES.append(f"scale-out: {SLACK_USERS * SLACK_MESSAGES}/{SLACK_USERS * SLACK_MESSAGES} Slack "
                        f"messages through nginx and the inbox stored once, in order, across the kill")

    # the killed instance stays down; the survivor answers on its own port too
    assert cluster.processes["rasa-0"].poll() is not None
    response = requests.post(f"{cluster.rasa_urls[1]}/webhooks/rest/webhook",
                             json={"sender": conversations[0].sender, "message": "thanks"}, timeout=30)
    assert response.status_code == 200 and response.json()

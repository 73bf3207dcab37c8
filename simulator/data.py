"""Deterministic fake data for the instance simulator: accounts, contacts, rooms, members.

Everything derives from ``(seed, account index)`` so two simulators started with the same seed
hold the same data, and ids from different seeds never collide.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉斌宇浩凯健俊帆帅旭宁婷雪琳晶欣怡佳悦思雨梦晨阳"
CORPS = ("星河科技", "蓝海贸易", "远航物流", "青松教育", "金石资本", "云图数据", "和风餐饮", "安心医疗")
REGIONS = ("北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安", "重庆")
TOPIC_WORDS = ("客户交流", "产品反馈", "售后服务", "项目协作", "活动通知", "VIP会员", "新品体验", "区域销售")
CHATTER_TEXTS = (
    "你好，请问这个产品还有货吗？",
    "收到，谢谢！",
    "明天下午三点开会，请准时参加。",
    "价格可以再优惠一点吗",
    "已经下单了，麻烦尽快发货",
    "好的，我稍后回复您",
    "这个问题我们已经反馈给技术同事了",
    "周末有活动吗？",
    "辛苦了👍",
    "Please check the latest quote.",
)


def person_name(rng):
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


@dataclass
class SimAccount:
    index: int
    account_id: str
    nickname: str
    status: str
    profile: dict
    contacts: list = field(default_factory=list)
    contact_index: dict = field(default_factory=dict)
    rooms: list = field(default_factory=list)
    room_index: dict = field(default_factory=dict)
    members: dict = field(default_factory=dict)
    send_times: deque = field(default_factory=deque)
    accepted_sends: int = 0
    was_online: bool = False  # status to restore after a client restart

    def brief(self):
        return {"account_id": self.account_id, "status": self.status}

    def as_dict(self):
        return {**self.profile, "account_id": self.account_id, "nickname": self.nickname, "status": self.status}


def account_id_for(seed, index):
    return f"wxid_s{seed}a{index + 1:03d}"


def build_account(seed, index, *, contacts, rooms, members, status="online", created_ms=0):
    """One account with its contacts, rooms and room members (timestamps relative to the day of
    ``created_ms``)."""
    rng = random.Random(f"{seed}:{index}")
    aid = account_id_for(seed, index)
    nickname = person_name(rng)
    profile = {
        "account_id": aid,
        "nickname": nickname,
        "avatar": f"https://avatars.example.com/{aid}.png",
        "phone": f"13{rng.randrange(100000000, 999999999)}",
        "email": None,
        "gender": rng.choice((0, 1, 2)),
        "region": rng.choice(REGIONS),
        "signature": None,
        "corp_name": rng.choice(CORPS),
    }
    account = SimAccount(index=index, account_id=aid, nickname=nickname, status=status, profile=profile)
    day_ms = 86_400_000
    created_ms -= created_ms % day_ms  # deterministic within a day
    for c in range(contacts):
        cid = f"{aid}_c{c + 1:05d}"
        external = rng.random() < 0.4
        contact = {
            "contact_id": cid,
            "name": person_name(rng),
            "kind": "official" if rng.random() < 0.02 else "friend",
            "remark": None if rng.random() < 0.7 else f"客户{c + 1}",
            "avatar": f"https://avatars.example.com/{cid}.png",
            "gender": rng.choice((0, 1, 2)),
            "region": rng.choice(REGIONS),
            "signature": None,
            "phone": None,
            "corp_name": rng.choice(CORPS) if external else profile["corp_name"],
            "is_external": external,
            "added_at_ms": max(0, created_ms - rng.randrange(1, 700) * day_ms),
        }
        account.contacts.append(contact)
        account.contact_index[cid] = contact
    for r in range(rooms):
        rid = f"R:{aid}_r{r + 1:04d}"
        own = rng.random() < 0.3
        pool = account.contacts
        count = max(1, members)
        picked = rng.sample(pool, min(len(pool), count - 1)) if pool else []
        room_members = [
            {
                "member_id": aid,
                "name": nickname,
                "role": "owner" if own else "member",
                "room_alias": None,
                "avatar": profile["avatar"],
                "joined_at_ms": max(0, created_ms - 400 * day_ms),
                "invited_by": None,
            }
        ]
        for m in picked:
            room_members.append(
                {
                    "member_id": m["contact_id"],
                    "name": m["name"],
                    "role": "member",
                    "room_alias": None if rng.random() < 0.8 else m["name"] + "（" + rng.choice(CORPS) + "）",
                    "avatar": m["avatar"],
                    "joined_at_ms": max(0, created_ms - rng.randrange(1, 400) * day_ms),
                    "invited_by": aid,
                }
            )
        stranger = 0
        while len(room_members) < count:
            stranger += 1
            sid = f"{rid}_m{stranger:04d}".replace("R:", "wxid_")
            room_members.append(
                {
                    "member_id": sid,
                    "name": person_name(rng),
                    "role": "member",
                    "room_alias": None,
                    "avatar": None,
                    "joined_at_ms": max(0, created_ms - rng.randrange(1, 400) * day_ms),
                    "invited_by": None,
                }
            )
        if not own and len(room_members) > 1:
            room_members[1]["role"] = "owner"
        if len(room_members) > 2 and rng.random() < 0.5:
            room_members[2]["role"] = "admin"
        owner = next(m["member_id"] for m in room_members if m["role"] == "owner")
        room = {
            "room_id": rid,
            "topic": f"{rng.choice(TOPIC_WORDS)}{r + 1}群",
            "member_count": len(room_members),
            "avatar": None,
            "notice": None if rng.random() < 0.6 else "请文明交流，禁止广告。",
            "owner_id": owner,
            "max_member_count": 500,
            "my_role": room_members[0]["role"],
            "joined_at_ms": room_members[0]["joined_at_ms"],
        }
        account.rooms.append(room)
        account.room_index[rid] = room
        account.members[rid] = room_members
    return account

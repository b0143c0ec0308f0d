"""A :class:`~redline.defences.state.StateStore` in Redis, shared by guards on many machines.

Each operation is one Lua script (or one command), which Redis runs atomically, so a
counter is exact however many workers add to it. The kinds of value follow
:class:`~redline.defences.state.MemoryState`: a key holds bytes (``set``), a number
(``incr``), a list (``push``) or a set (``add_members``); writing one kind over another
replaces it, and reading a key as another kind finds nothing. Bytes and numbers are both
Redis strings, told apart by a one-byte tag (``b`` or ``n``); numbers are written with 17
significant digits so that a float survives the round trip exactly. Expiry is Redis's
own (milliseconds). Every key gets ``prefix`` so that a shared Redis keeps the guard's
keys apart.
"""
from __future__ import annotations

import math
from typing import Any

_BYTES, _NUMBER = b"b", b"n"

_GET = """
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return false end
local v = redis.call('GET', KEYS[1])
if string.sub(v, 1, 1) ~= 'b' then return false end
return string.sub(v, 2)
"""

# ARGV: amount, ttl in ms (-1: none, 0: expires at once)
_INCR = """
local key, amount, ttl = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local current = nil
if redis.call('TYPE', key).ok == 'string' then
  local v = redis.call('GET', key)
  if string.sub(v, 1, 1) == 'n' then current = tonumber(string.sub(v, 2)) end
end
if current ~= nil then
  local text = 'n' .. string.format('%.17g', current + amount)
  redis.call('SET', key, text, 'KEEPTTL')
  return text
end
local text = 'n' .. string.format('%.17g', amount)
if ttl == 0 then
  redis.call('DEL', key)
elseif ttl > 0 then
  redis.call('SET', key, text, 'PX', ttl)
else
  redis.call('SET', key, text)
end
return text
"""

# ARGV: keep, ttl in ms (-1: none, 0: expires at once; counted from this push), values...
_PUSH = """
local key, keep, ttl = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('TYPE', key).ok ~= 'list' then redis.call('DEL', key) end
for i = 3, #ARGV, 1000 do
  redis.call('RPUSH', key, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if keep <= 0 or ttl == 0 then redis.call('DEL', key)
else
  redis.call('LTRIM', key, -keep, -1)
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) else redis.call('PERSIST', key) end
end
return 0
"""

# ARGV: keep (bytes), ttl in ms (-1: none, 0: expires at once; counted from this call), data
_APPEND_BYTES = """
local key, keep, ttl = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local v = ''
if redis.call('TYPE', key).ok == 'string' then
  local held = redis.call('GET', key)
  if string.sub(held, 1, 1) == 'b' then v = string.sub(held, 2) end
end
v = v .. ARGV[3]
if keep <= 0 then v = '' elseif #v > keep then v = string.sub(v, -keep) end
if ttl == 0 then redis.call('DEL', key)
elseif ttl > 0 then redis.call('SET', key, 'b' .. v, 'PX', ttl)
else redis.call('SET', key, 'b' .. v) end
return v
"""

# ARGV: n (-1: all)
_RECENT = """
if redis.call('TYPE', KEYS[1]).ok ~= 'list' then return {} end
local n = tonumber(ARGV[1])
if n < 0 then return redis.call('LRANGE', KEYS[1], 0, -1) end
return redis.call('LRANGE', KEYS[1], -n, -1)
"""

# ARGV: ttl in ms (-1: none, 0: expires at once), the number of groups, the size of each
# group, then the members of all groups in order (distinct within a group); returns, per
# group, how many of its members were already in the set
_ADD_MEMBER_GROUPS = """
local key, ttl, count = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local created = redis.call('TYPE', key).ok ~= 'set'
if created then redis.call('DEL', key) end
local known, at = {}, 3 + count
for g = 1, count do
  local already = 0
  for i = at, at + tonumber(ARGV[2 + g]) - 1 do
    already = already + 1 - redis.call('SADD', key, ARGV[i])
  end
  at = at + tonumber(ARGV[2 + g])
  known[g] = already
end
if created and ttl == 0 then redis.call('DEL', key)
elseif created and ttl > 0 then redis.call('PEXPIRE', key, ttl) end
return known
"""


def _ttl_ms(ttl: float | None) -> int:
    """Redis milliseconds for a ttl in seconds: -1 for none, 0 for already expired."""
    if ttl is None:
        return -1
    return max(0, math.ceil(float(ttl) * 1000))


class RedisState:
    """A StateStore in the Redis server at ``url`` (``redis://host:port/db``)."""

    def __init__(self, url: str, prefix: str = "redline:", timeout: float = 5.0, client: Any = None):
        import redis  # the guard extra: pip install 'redline[guard]'

        self.url = url
        self.prefix = prefix
        self.client = client if client is not None else redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
        )
        self._get = self.client.register_script(_GET)
        self._incr = self.client.register_script(_INCR)
        self._push = self.client.register_script(_PUSH)
        self._recent = self.client.register_script(_RECENT)
        self._append_bytes = self.client.register_script(_APPEND_BYTES)
        self._add_groups = self.client.register_script(_ADD_MEMBER_GROUPS)

    def _key(self, key: str) -> str:
        return self.prefix + key

    def ping(self) -> None:
        self.client.ping()

    def get(self, key: str) -> bytes | None:
        value = self._get(keys=[self._key(key)])
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        ms = _ttl_ms(ttl)
        if ms == 0:
            self.client.delete(self._key(key))
        else:
            self.client.set(self._key(key), _BYTES + bytes(value), px=ms if ms > 0 else None)

    def delete(self, key: str) -> None:
        self.client.delete(self._key(key))

    def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        text = self._incr(keys=[self._key(key)], args=[repr(float(amount)), _ttl_ms(ttl)])
        return float(bytes(text)[1:])

    def push(self, key: str, values: list[bytes], keep: int, ttl: float | None = None) -> None:
        self._push(keys=[self._key(key)], args=[int(keep), _ttl_ms(ttl), *(bytes(v) for v in values)])

    def recent(self, key: str, n: int | None = None) -> list[bytes]:
        if n is not None and n <= 0:
            return []
        return [bytes(v) for v in self._recent(keys=[self._key(key)], args=[-1 if n is None else int(n)])]

    def append_bytes(self, key: str, data: bytes, keep: int, ttl: float | None = None) -> bytes:
        return bytes(self._append_bytes(keys=[self._key(key)], args=[int(keep), _ttl_ms(ttl), bytes(data)]) or b"")

    def add_members(self, key: str, members: list[bytes], ttl: float | None = None) -> int:
        return self.add_member_groups(key, [members], ttl)[0]

    def add_member_groups(self, key: str, groups: list[list[bytes]], ttl: float | None = None) -> list[int]:
        unique = [list(dict.fromkeys(bytes(m) for m in group)) for group in groups]
        if not unique:
            return []
        known = self._add_groups(keys=[self._key(key)],
                                 args=[_ttl_ms(ttl), len(unique), *map(len, unique), *(m for g in unique for m in g)])
        return [int(k) for k in known]

    def close(self) -> None:
        self.client.close()

    def __repr__(self) -> str:
        from .stores import describe_store

        return f"RedisState({describe_store(self.url)!r})"

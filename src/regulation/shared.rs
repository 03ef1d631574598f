//! The failure limits counted in Redis, so that several gateways count one attempt budget
//! (`store.redis_url`). Each gateway still keeps its own [`Regulator`](super::Regulator) in
//! memory, and an attempt must pass both: the local one answers at once and stays exact for the
//! attempts this gateway sees; this one adds up every gateway's attempts.
//!
//! The same three keys as in memory, with the same limits, windows and back-off: (user,
//! address), address, and user (the last not applied at the user's known addresses, which are
//! kept here too, so an address learned on one gateway is known on all). Each key is one Redis
//! hash, `<prefix>f:<scope>:<key>`, with the sliding-window counts (`w` window number, `c`
//! this window, `p` the previous one), the attempts in flight (`r`), the ban (`until`) and its
//! level (`level`); it expires when nothing in it can matter any more. Known addresses are a hash
//! per user, `<prefix>k:<user>`, address to last success, the 16 most recent for 30 days.
//!
//! Every step is one Lua script, so it is atomic across gateways: **reserve** refuses during a
//! ban and while failures plus attempts in flight reach a limit (with attempts in flight, as in
//! memory), else takes an attempt under each key; **fail** gives it back, counts the failure and bans a key that reached its limit;
//! **succeed** gives it back, clears the (user, address) key and learns the address;
//! **release** only gives it back (an attempt dropped unsettled: a fault, a locked account). An attempt in flight
//! that is never settled (a gateway killed mid-check) stops counting when its key expires
//! (within a window).
//!
//! Redis out of reach, or slower than [`CALL_TIMEOUT`], fails the attempt closed (the sign-in
//! page answers 503); the connection manager reconnects by itself.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::{addr_key, user_key, RegulationConfig, KNOWN_TTL_MS, USER_WINDOW_MS};
use crate::clock::SharedClock;
use crate::store::OwnedRuntime;

/// For one whole call, connecting included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

const SCRIPT: &str = r#"
-- KEYS: pair, address, user, known.  ARGV: op, now, address, window, user window,
-- max pair, max address, max user, ban, max ban, known ttl, and when settling whether the
-- attempt holds a place under the user key (1/0).
local op, now, addr = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local win, uwin = tonumber(ARGV[4]), tonumber(ARGV[5])
local limits = {tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])}
local wins = {win, win, uwin}
local ban, max_ban, known_ttl = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])

local known = redis.call('HGET', KEYS[4], addr)
known = known and (now - tonumber(known) < known_ttl)
-- The per-user key does not apply at a known address.
local n = known and 2 or 3

local function load(i)
  local h = redis.call('HMGET', KEYS[i], 'w', 'c', 'p', 'r', 'until', 'level')
  local s = {w = tonumber(h[1]) or 0, c = tonumber(h[2]) or 0, p = tonumber(h[3]) or 0,
             r = tonumber(h[4]) or 0, untl = tonumber(h[5]) or 0, level = tonumber(h[6]) or 0}
  local cw = math.floor(now / wins[i])
  if cw ~= s.w then
    s.p = (cw == s.w + 1) and s.c or 0
    s.c = 0
    s.w = cw
  end
  local weight = 1 - (now - cw * wins[i]) / wins[i]
  s.count = s.c + s.p * weight
  return s
end

local function save(i, s)
  redis.call('HSET', KEYS[i], 'w', s.w, 'c', s.c, 'p', s.p, 'r', math.max(s.r, 0),
    'until', s.untl, 'level', s.level)
  -- Kept while a count, a ban or its level can still matter.
  local keep = math.max(2 * wins[i], s.untl - now + max_ban)
  redis.call('PEXPIRE', KEYS[i], math.ceil(keep))
end

if op == 'reserve' then
  local states, banned = {}, 0
  for i = 1, n do
    local s = load(i)
    if s.untl > now then banned = math.max(banned, s.untl) end
    states[i] = s
  end
  if banned > 0 then return {0, banned} end
  -- As in memory: the count only refuses while attempts are in flight (after a ban, one more
  -- attempt may go on, and its failure brings the next, longer ban).
  for i = 1, n do
    local s = states[i]
    if s.r > 0 and s.count + s.r >= limits[i] then return {0, now + 1000} end
  end
  for i = 1, n do
    states[i].r = states[i].r + 1
    save(i, states[i])
  end
  return {1, n == 3 and 1 or 0}
end

-- Settling gives back the places the attempt took (not under the user key when it was
-- reserved at a known address); banning an address takes none.
local held = {1, 1, tonumber(ARGV[12]) or 0}
local banned, new = 0, {}
for i = 1, 3 do
  local s = load(i)
  if op ~= 'ban_address' then s.r = s.r - held[i] end
  if op == 'fail' or (op == 'ban_address' and i == 2) then
    if op == 'fail' then s.c = s.c + 1 end
    if op == 'ban_address' or (s.untl <= now and s.count + 1 >= limits[i]) then
      if s.untl > now then
        -- A ban running already is kept, not shortened.
      else
        if s.level > 0 and now - s.untl > max_ban then s.level = 0 end
        s.untl = now + math.min(ban * 2 ^ s.level, max_ban)
        s.level = s.level + 1
        table.insert(new, i)
        table.insert(new, s.untl)
        table.insert(new, s.level)
      end
    end
    if s.untl > now and (i < 3 or not known) then banned = math.max(banned, s.untl) end
  end
  if op == 'succeed' and i == 1 then
    redis.call('DEL', KEYS[1])
  elseif op ~= 'ban_address' or i == 2 then
    save(i, s)
  end
end
if op == 'succeed' then
  redis.call('HSET', KEYS[4], addr, now)
  redis.call('PEXPIRE', KEYS[4], known_ttl)
  local all = redis.call('HGETALL', KEYS[4])
  if #all > 32 then
    local oldest, at = nil, nil
    for j = 1, #all, 2 do
      local t = tonumber(all[j + 1])
      if at == nil or t < at then oldest, at = all[j], t end
    end
    redis.call('HDEL', KEYS[4], oldest)
  end
end
-- Whether a ban applies, until when, then each new ban as (key number, until, level).
local out = {banned > 0 and 1 or 0, banned}
for _, v in ipairs(new) do table.insert(out, v) end
return out
"#;

/// What a failure counted in Redis led to.
#[derive(Debug, Default)]
pub struct Failed {
    /// The ban that now applies to this (user, address), if any.
    pub until_ms: Option<u64>,
    /// The bans this failure started.
    pub new_bans: Vec<NewBan>,
}

/// A ban the shared limits started: its scope and key as the store keeps them.
#[derive(Debug)]
pub struct NewBan {
    pub scope: &'static str,
    pub key: String,
    pub until_ms: u64,
    pub level: u8,
}

/// Why an attempt may not go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Banned, or too many attempts in flight, until this time (ms).
    Until(u64),
    /// Redis could not answer: fail closed.
    Fault,
}

/// The shared half of the limits; one per gateway, cheap to clone.
#[derive(Clone)]
pub struct SharedLimits {
    conn: ConnectionManager,
    prefix: String,
    script: redis::Script,
    cfg: RegulationConfig,
    clock: SharedClock,
    /// The Redis connection's tasks live here: pingora's per-thread runtimes come and go.
    runtime: Arc<OwnedRuntime>,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits")
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// An attempt reserved in Redis: settle it with [`SharedAttempt::failed`] or
/// [`SharedAttempt::succeeded`], or [`SharedAttempt::release`] it.
#[must_use]
#[derive(Debug)]
pub struct SharedAttempt {
    limits: SharedLimits,
    user: String,
    addr: IpAddr,
    /// Holds a place under the user key (not taken at a known address).
    held_user: bool,
    /// Failed, succeeded or released; if not, dropping it gives the places back.
    settled: bool,
}

impl SharedLimits {
    /// Connects to `url` on a runtime of its own (thread `stepgate-redis`); blocks the calling
    /// thread until connected (a plain channel, so it works inside a runtime too).
    pub fn open(
        url: &str,
        prefix: &str,
        cfg: RegulationConfig,
        clock: SharedClock,
    ) -> Result<SharedLimits, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("stepgate-redis")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start its runtime: {e}"))?;
        let runtime = Arc::new(OwnedRuntime(Some(runtime)));
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT));
        let (done, answer) = std::sync::mpsc::channel();
        runtime.handle().ok_or("closed")?.spawn(async move {
            let connecting = ConnectionManager::new_with_config(client, config);
            let out = match tokio::time::timeout(CALL_TIMEOUT * 2, connecting).await {
                Ok(Ok(conn)) => Ok(conn),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {:?}", CALL_TIMEOUT * 2)),
            };
            let _ = done.send(out);
        });
        let conn = answer.recv().map_err(|_| "closed".to_owned())??;
        Ok(SharedLimits {
            conn,
            prefix: prefix.to_owned(),
            script: redis::Script::new(SCRIPT),
            cfg,
            clock,
            runtime,
        })
    }

    /// Takes one attempt of `user` from `addr` under every key, or says why not.
    pub async fn reserve(&self, user: &str, addr: IpAddr) -> Result<SharedAttempt, Refused> {
        let answer = self.run("reserve", user, addr, false).await?;
        let (ok, detail) = (answer[0], answer[1]);
        if ok == 1 {
            Ok(SharedAttempt {
                limits: self.clone(),
                user: user.to_owned(),
                addr,
                held_user: detail == 1,
                settled: false,
            })
        } else {
            Err(Refused::Until(detail))
        }
    }

    /// Bans `addr` for every user on every gateway (the owner said "this wasn't me").
    pub async fn ban_address(&self, addr: IpAddr) -> Result<u64, Refused> {
        self.run("ban_address", "", addr, false)
            .await
            .map(|answer| answer[1])
    }

    /// Forgets a key's count and ban on every gateway (`stepgate admin bans lift`); whether
    /// there was one. `scope` and `key` as the store keeps bans.
    pub async fn lift(&self, scope: &str, key: &str) -> Result<bool, Refused> {
        let (mut conn, name) = (self.conn.clone(), format!("{}f:{scope}:{key}", self.prefix));
        let call = async move {
            let mut del = redis::cmd("DEL");
            del.arg(name);
            tokio::time::timeout(CALL_TIMEOUT, del.query_async::<u64>(&mut conn)).await
        };
        let runtime = self.runtime.handle().ok_or(Refused::Fault)?;
        match runtime.spawn(call).await {
            Ok(Ok(Ok(n))) => Ok(n > 0),
            _ => Err(Refused::Fault),
        }
    }

    async fn run(
        &self,
        op: &'static str,
        user: &str,
        addr: IpAddr,
        held_user: bool,
    ) -> Result<Vec<u64>, Refused> {
        let key = addr_key(addr).to_string();
        let user = user_key(user);
        let p = &self.prefix;
        let keys = [
            format!("{p}f:pair:{user}\u{1f}{key}"),
            format!("{p}f:address:{key}"),
            format!("{p}f:user:{user}"),
            format!("{p}k:{user}"),
        ];
        let cfg = &self.cfg;
        let args: [u64; 10] = [
            self.clock.now_ms(),
            cfg.window.as_millis() as u64,
            USER_WINDOW_MS,
            u64::from(cfg.max_failures),
            u64::from(cfg.max_failures_per_address),
            u64::from(cfg.max_failures_per_user),
            cfg.ban.as_millis() as u64,
            cfg.max_ban.as_millis() as u64,
            KNOWN_TTL_MS,
            u64::from(held_user),
        ];
        let (script, mut conn) = (self.script.clone(), self.conn.clone());
        let call = async move {
            let mut invocation = script.prepare_invoke();
            for k in &keys {
                invocation.key(k);
            }
            // ARGV: op, now, address, then the limits (see the script).
            invocation.arg(op).arg(args[0]).arg(&key);
            for a in &args[1..] {
                invocation.arg(*a);
            }
            tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async::<Vec<u64>>(&mut conn)).await
        };
        let Some(runtime) = self.runtime.handle() else {
            return Err(Refused::Fault);
        };
        match runtime.spawn(call).await {
            Ok(Ok(Ok(answer))) if answer.len() >= 2 => Ok(answer),
            Ok(Ok(Ok(answer))) => {
                tracing::error!(target: "stepgate::regulation", op, ?answer, "the shared limits in Redis answered something else; the attempt is refused");
                Err(Refused::Fault)
            }
            Ok(Ok(Err(e))) => {
                tracing::error!(target: "stepgate::regulation", op, error = %e, "the shared limits in Redis could not answer; the attempt is refused");
                Err(Refused::Fault)
            }
            Ok(Err(_)) | Err(_) => {
                tracing::error!(target: "stepgate::regulation", op, "the shared limits in Redis did not answer in time; the attempt is refused");
                Err(Refused::Fault)
            }
        }
    }
}

impl SharedAttempt {
    /// The attempt failed: counted on every gateway. The ban that applies to this (user,
    /// address) after it, if any, and the bans it caused (to be kept in the store like the
    /// gateway's own).
    pub async fn failed(mut self) -> Failed {
        self.settled = true;
        let Ok(answer) = self.settle("fail").await else {
            return Failed::default();
        };
        let (user, key) = (user_key(&self.user), addr_key(self.addr));
        let new_bans = answer[2..]
            .chunks_exact(3)
            .filter_map(|b| {
                let (scope, key) = match b[0] {
                    1 => ("pair", format!("{user}\u{1f}{key}")),
                    2 => ("address", key.to_string()),
                    3 => ("user", user.to_owned()),
                    _ => return None,
                };
                Some(NewBan {
                    scope,
                    key,
                    until_ms: b[1],
                    level: u8::try_from(b[2]).unwrap_or(u8::MAX),
                })
            })
            .collect();
        Failed {
            until_ms: (answer[0] == 1).then_some(answer[1]),
            new_bans,
        }
    }

    /// The attempt succeeded: the (user, address) key is cleared and the address known.
    pub async fn succeeded(mut self) {
        self.settled = true;
        let _ = self.settle("succeed").await;
    }

    async fn settle(&self, op: &'static str) -> Result<Vec<u64>, Refused> {
        self.limits
            .run(op, &self.user, self.addr, self.held_user)
            .await
    }
}

impl Drop for SharedAttempt {
    /// An attempt ended otherwise (a fault, a locked account): its places are given back,
    /// counting nothing, in the background.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (limits, user, addr, held) = (
            self.limits.clone(),
            std::mem::take(&mut self.user),
            self.addr,
            self.held_user,
        );
        if let Some(runtime) = self.limits.runtime.handle() {
            runtime.spawn(async move {
                let _ = limits.run("release", &user, addr, held).await;
            });
        }
    }
}

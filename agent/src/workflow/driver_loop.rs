//! The workflow task's loop: inputs to the cores, then status and gossiped fields.

use super::*;

impl Workflow {
    pub(super) fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub(super) async fn run(mut self, stop: CancellationToken) {
        // Our own networks, for choosing the join URL a follower can reach.
        let nets: Vec<(IpAddr, u8)> = if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| match i.addr {
                if_addrs::IfAddr::V4(a) => Some((IpAddr::V4(a.ip), a.prefixlen)),
                _ => None,
            })
            .collect();
        let now = self.now();
        self.coordinator
            .handle(now, formation::EntryInput::Networks(nets));
        loop {
            let now = self.now();
            let deadline = [
                self.election.next_deadline(),
                self.coordinator.next_deadline(),
                self.follower.next_deadline(),
                (!self.probing).then_some(self.next_probe),
                self.held.values().map(|h| h.until).min(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_secs(1));
            let sleep = tokio::time::sleep_until((self.start + deadline).into());
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = self.snapshot_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let members = self.snapshot_rx.borrow_and_update().members.clone();
                    if members != self.members {
                        self.members = members;
                        self.view_changed();
                    }
                }
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => return,
                },
                _ = sleep => {
                    let now = self.now();
                    self.election.handle(now, election::Input::Tick);
                    self.coordinator.handle(now, formation::EntryInput::Tick);
                    self.follower.handle(now, formation::FollowerInput::Tick);
                    if !self.probing && now >= self.next_probe {
                        self.probe();
                    }
                    self.release_held(now);
                }
            }
            self.process();
        }
    }

    /// Probes the facts now, or right after the probe in flight (whose answer may predate
    /// the reason for asking).
    pub(super) fn probe_soon(&mut self) {
        if self.probing {
            self.probe_again = true;
        } else {
            self.next_probe = self.now();
        }
    }

    pub(super) fn is_entry(&self) -> bool {
        matches!(self.election.role(), election::Role::Entry { .. })
    }

    pub(super) fn local_view(&self) -> Option<MemberView> {
        self.views
            .iter()
            .find(|v| v.id == self.setup.node_id)
            .cloned()
    }

    pub(super) fn entry_member(&self) -> Option<&pb::Member> {
        if self.is_entry() {
            return self.members.iter().find(|m| m.local);
        }
        let (entry, _) = self.election.following()?;
        self.members.iter().find(|m| m.id == entry)
    }

    pub(super) fn view_changed(&mut self) {
        let now = self.now();
        let members = self.members.clone();
        self.views = members
            .iter()
            .map(|m| {
                let liveness = self.deaths.liveness(m, now);
                facts::member_view(m, liveness)
            })
            .collect();
        self.election
            .handle(now, election::Input::ViewChanged(self.views.clone()));
        self.feed_follower();
    }

    pub(super) fn feed_follower(&mut self) {
        let Some(local) = self.local_view() else {
            return;
        };
        let entry = self
            .entry_member()
            .map(|m| m.id.clone())
            .and_then(|id| self.views.iter().find(|v| v.id == id).cloned());
        let now = self.now();
        self.follower.handle(
            now,
            formation::FollowerInput::View(Box::new(FollowerView {
                local,
                entry,
                members: self.views.clone(),
            })),
        );
    }

    pub(super) fn probe(&mut self) {
        self.probing = true;
        let m8s = self.setup.microk8s.clone();
        let remembered = self.remembered.clone();
        let tx = self.tx.clone();
        let known_version = self.facts.version.clone();
        let was_running = self.facts.state == Mk8sState::Ready;
        self.tracker.spawn(async move {
            let version = match known_version {
                Some(v) => Some(v),
                None => m8s
                    .version()
                    .await
                    .ok()
                    .flatten()
                    .map(|v| format!("{}.{}", v.major, v.minor)),
            };
            let facts =
                facts::probe(m8s.as_ref(), remembered.as_deref(), version, was_running).await;
            let _ = tx.send(Command::Facts(Box::new(facts))).await;
        });
    }

    pub(super) fn on_command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::Claim { from, claim, reply } => {
                self.pending_claims.insert(from.clone(), reply);
                self.election
                    .handle(now, election::Input::Claim { from, claim });
            }
            Command::JoinRequest { req, reply } => {
                if !self.is_entry() {
                    let _ = reply.send(not_entry_answer());
                    return;
                }
                let cluster = self.facts.cluster_id.clone().unwrap_or_default();
                let response = self.coordinator.request(now, req.clone());
                match response {
                    formation::JoinResponse::Wait { .. } => {
                        let held = HeldJoin {
                            req,
                            reply,
                            until: now + JOIN_HOLD,
                        };
                        if let Some(old) = self.held.insert(held.req.follower.clone(), held) {
                            // Superseded by the follower's newer question.
                            let _ = old.reply.send(wait_reply(Duration::ZERO, &cluster));
                        }
                    }
                    other => {
                        let _ = reply.send(rpc::response_to_pb(&other, &cluster));
                    }
                }
            }
            Command::Report { from, ok, detail } => {
                if ok
                    && self.is_entry()
                    && self.coordinator.status().serving.as_deref() == Some(from.as_str())
                {
                    self.verify_poll = Some(VERIFY_POLL);
                }
                self.coordinator.handle(
                    now,
                    formation::EntryInput::Report {
                        follower: from,
                        ok,
                        detail,
                    },
                );
            }
            Command::Removal { name } => {
                self.coordinator
                    .handle(now, formation::EntryInput::LeaveRequested { name });
            }
            Command::Leave { reply } => self.leave(reply),
            Command::Facts(f) => {
                self.probing = false;
                let interval = match self.verify_poll.filter(|_| self.serving) {
                    Some(p) => {
                        self.verify_poll = Some(next_verify_poll(p));
                        p
                    }
                    None if self.serving => FAST_POLL,
                    None => self.setup.formation.poll_interval,
                };
                self.next_probe = if std::mem::take(&mut self.probe_again) {
                    now
                } else {
                    now + interval
                };
                if f.state == Mk8sState::Error
                    && self.facts.error != f.error
                    && let Some(e) = &f.error
                {
                    log::warn!("microk8s probe failed: {e}");
                }
                self.facts = *f;
                if self.facts.state == Mk8sState::Worker
                    && let Some(size) = self
                        .entry_member()
                        .filter(|e| e.fields.get(keys::CLUSTER) == self.facts.cluster_id.as_ref())
                        .and_then(|e| e.fields.get(keys::SIZE)?.parse::<u32>().ok())
                {
                    self.facts.size = self.facts.size.max(size);
                }
                if self.is_entry()
                    && let Some(cf) = facts::cluster_facts(&self.facts, &self.views)
                {
                    self.coordinator
                        .handle(now, formation::EntryInput::Facts(cf));
                }
                self.publish_fields();
            }
            Command::ClaimAnswer { from, reply } => match reply {
                Some(reply) => self
                    .election
                    .handle(now, election::Input::ClaimReply { from, reply }),
                None => self
                    .election
                    .handle(now, election::Input::SendFailed { to: from }),
            },
            Command::AddNode { follower, result } => {
                let input = match result {
                    Ok(urls) => formation::EntryInput::AddNodeDone { follower, urls },
                    Err(error) => formation::EntryInput::AddNodeFailed { follower, error },
                };
                self.coordinator.handle(now, input);
            }
            Command::Removed { name, ok, detail } => {
                self.coordinator
                    .handle(now, formation::EntryInput::RemoveDone { name, ok, detail });
                self.probe_soon();
            }
            Command::Ready { ok, detail } => self
                .follower
                .handle(now, formation::FollowerInput::Ready { ok, detail }),
            Command::JoinAnswer { from, result } => match result {
                Ok((response, cluster)) => {
                    if let Some(c) = cluster {
                        self.granted_cluster = Some(c);
                    }
                    self.follower
                        .handle(now, formation::FollowerInput::Response { from, response })
                }
                Err(error) => self
                    .follower
                    .handle(now, formation::FollowerInput::RequestFailed { from, error }),
            },
            Command::JoinDone { ok, detail, took } => {
                let ms = took.as_millis().to_string();
                self.events.emit(
                    Level::Info,
                    Event::JoinFinished,
                    &self.setup.node_name,
                    &[(Field::DurationMs, &ms)],
                    format!(
                        "microk8s join {} after {ms} ms",
                        if ok { "exited 0" } else { "failed" }
                    ),
                );
                self.follower
                    .handle(now, formation::FollowerInput::JoinFinished { ok, detail })
            }
            Command::Verified { ok, detail } => {
                if ok && let Some(c) = self.granted_cluster.clone() {
                    // Workers cannot read the cluster's credentials; remember what they joined.
                    let _ = std::fs::write(self.setup.data_dir.join("cluster-id"), &c);
                    self.remembered = Some(c);
                }
                self.probe_soon();
                self.follower
                    .handle(now, formation::FollowerInput::Verified { ok, detail })
            }
            Command::LeftOther { ok, detail } => self
                .follower
                .handle(now, formation::FollowerInput::LeftOther { ok, detail }),
        }
    }

    pub(super) fn leave(&mut self, reply: oneshot::Sender<String>) {
        let now = self.now();
        self.follower.handle(now, formation::FollowerInput::Leave);
        let clustered = self.facts.state == Mk8sState::Worker
            || (self.facts.state == Mk8sState::Ready && self.facts.size > 1);
        if !clustered {
            let _ = reply.send("this node is in no microk8s cluster; nothing to leave".to_owned());
            return;
        }
        let m8s = self.setup.microk8s.clone();
        let entry = self
            .entry_member()
            .filter(|m| !m.local)
            .map(|m| (m.addr.clone(), m.name.clone()));
        let client = entry.as_ref().and_then(|(addr, _)| self.client(addr));
        let (cluster, from, name) = (
            self.setup.cluster.clone(),
            self.setup.node_id.clone(),
            self.setup.node_name.clone(),
        );
        self.events.emit(
            Level::Info,
            Event::LeaveStarted,
            &name,
            &[],
            "running microk8s leave".to_owned(),
        );
        self.tracker.spawn(async move {
            if let Err(e) = m8s.leave().await {
                let _ = reply.send(format!("microk8s leave failed: {e}"));
                return;
            }
            let Some(mut client) = client else {
                let _ = reply.send(
                    "left the microk8s cluster; no entry point to remove this node".to_owned(),
                );
                return;
            };
            let req = pb::RemovalRequest {
                cluster,
                from,
                name,
            };
            let msg = match tokio::time::timeout(RPC_TIMEOUT, client.request_removal(req)).await {
                Ok(Ok(_)) => format!(
                    "left the microk8s cluster; {} removes this node",
                    entry.map(|e| e.1).unwrap_or_default()
                ),
                Ok(Err(e)) => format!(
                    "left the microk8s cluster; asking the entry point to remove it failed: {}",
                    e.message()
                ),
                Err(_) => "left the microk8s cluster; the entry point did not answer".to_owned(),
            };
            let _ = reply.send(msg);
        });
    }

    pub(super) fn client(&mut self, addr: &str) -> Option<PeerClient<Channel>> {
        if let Some(c) = self.clients.get(addr) {
            return Some(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).ok()?;
        let c = PeerClient::new(
            endpoint
                .connect_timeout(RPC_TIMEOUT)
                .timeout(RPC_TIMEOUT)
                .connect_lazy(),
        );
        self.clients.insert(addr.to_owned(), c.clone());
        Some(c)
    }

    pub(super) fn addr_of(&self, id: &str) -> Option<String> {
        self.members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.addr.clone())
    }

    /// Answers the held join request that can be answered now: the follower being served
    /// once its grant exists, everyone once this node is no longer the entry point.
    pub(super) fn answer_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        if !self.is_entry() {
            for (_, h) in self.held.drain() {
                let _ = h.reply.send(not_entry_answer());
            }
            return;
        }
        let Some(follower) = self.coordinator.status().serving else {
            return;
        };
        let Some(held) = self.held.remove(&follower) else {
            return;
        };
        let now = self.now();
        match self.coordinator.request(now, held.req.clone()) {
            formation::JoinResponse::Wait { .. } => {
                self.held.insert(follower, held);
            }
            other => {
                let cluster = self.facts.cluster_id.clone().unwrap_or_default();
                let _ = held.reply.send(rpc::response_to_pb(&other, &cluster));
            }
        }
    }

    /// Answers held requests whose hold is over with "ask again now".
    pub(super) fn release_held(&mut self, now: Duration) {
        let cluster = self.facts.cluster_id.clone().unwrap_or_default();
        for (_, h) in self.held.extract_if(|_, h| h.until <= now) {
            let _ = h.reply.send(wait_reply(Duration::ZERO, &cluster));
        }
    }

    /// Carries out everything the three cores asked for, then publishes status and fields.
    pub(super) fn process(&mut self) {
        // Before the coordinator's outputs: a grant made by the last input is answered now.
        self.answer_held();
        for out in self.election.drain_outputs() {
            self.on_election(out);
        }
        for out in self.coordinator.drain_outputs() {
            self.on_entry(out);
        }
        // The election may have changed whom we follow.
        self.feed_follower();
        for out in self.follower.drain_outputs() {
            self.on_follower(out);
        }
        self.publish_fields();
        self.publish_status();
    }

    pub(super) fn emit(&self, level: Level, event: Event, peer: &str, message: String) {
        let role = self.role_word();
        self.events
            .emit(level, event, peer, &[(Field::Role, role)], message);
    }
    pub(super) fn role_word(&self) -> &'static str {
        let joining = self.phase.is_joining();
        match self.local_view() {
            Some(v) => formation::node_role(self.is_entry(), joining, &v).as_str(),
            None => "unclustered",
        }
    }

    pub(super) fn publish_fields(&mut self) {
        let mut fields = facts::local_fields(&self.facts, self.setup.priority, self.has_route);
        if let Some(t) = self.announce.0 {
            fields.insert(keys::ENTRY_TERM.to_owned(), t.to_string());
        }
        if let Some((id, t)) = &self.announce.1 {
            fields.insert(keys::FOLLOWED.to_owned(), format!("{id}:{t}"));
        }
        fields.insert(keys::ROLE.to_owned(), self.role_word().to_owned());
        if self.is_entry() {
            fields.extend(facts::entry_fields(&self.facts));
        }
        if fields != self.published {
            self.published = fields.clone();
            let mesh = self.mesh.clone();
            self.tracker
                .spawn(async move { mesh.set_fields(fields).await });
        }
    }

    pub(super) fn publish_status(&self) {
        let entry = self.entry_member().cloned();
        let f = |m: &pb::Member, k: &str| m.fields.get(k).cloned().unwrap_or_default();
        let mut state = pb::ClusterState {
            microk8s: self.facts.state.as_str().to_owned(),
            term: self.election.status().seen_term,
            conflict: self.conflict.clone().unwrap_or_default(),
            ..Default::default()
        };
        let mut warnings: Vec<String> = self.refusals.clone();
        warnings.extend(self.blocked.clone());
        warnings.extend(self.conflict.clone());
        if let Some(e) = &entry {
            state.entry_point = e.name.clone();
            state.size = f(e, keys::READY_NODES)
                .split(',')
                .filter(|s| !s.is_empty())
                .count() as u32;
            state.voters = f(e, keys::VOTERS).parse().unwrap_or(0);
            state.ha = f(e, keys::HA) == "1";
        }
        if self.is_entry()
            && let Some(cf) = facts::cluster_facts(&self.facts, &self.views)
        {
            let health = formation::cluster_health(&cf);
            state.size = health.size;
            state.voters = health.voters;
            state.ha = health.ha;
            warnings.extend(health.warnings.iter().map(ToString::to_string));
        }
        let role = self.role_word();
        state.verified = self.is_entry()
            || (self.refusals.is_empty()
                && self.local_view().is_some_and(|local| {
                    entry
                        .as_ref()
                        .and_then(|e| self.views.iter().find(|v| v.id == e.id))
                        .is_some_and(|e| formation::already_joined(&local, e))
                })
                && entry.as_ref().is_some_and(|e| {
                    facts::verified_by_entry(
                        e,
                        &self.setup.node_name,
                        Some(self.setup.advertise.ip()),
                        M8sRole::Worker,
                    )
                    .is_ok()
                }));
        self.snapshot.send_if_modified(|s| {
            let changed = s.role != role || s.cluster_state != state || s.warnings != warnings;
            if changed {
                s.role = role.to_owned();
                s.cluster_state = state;
                s.warnings = warnings;
                crate::notify::status(&format!("{}: {role}", self.setup.node_name));
            }
            changed
        });
    }
}

/// The answer of a node that is not the entry point: ask again later (it may become one, or
/// the follower learns the real entry point meanwhile).
fn not_entry_answer() -> pb::JoinResponseMsg {
    wait_reply(Duration::from_secs(2), "")
}

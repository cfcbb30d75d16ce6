//! The workflow task's loop: inputs to the cores, the cores' outputs to actions.

use super::*;

impl Workflow {
    fn now(&self) -> Duration {
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
                }
            }
            self.process();
        }
    }

    fn is_entry(&self) -> bool {
        matches!(self.election.role(), election::Role::Entry { .. })
    }

    fn local_view(&self) -> Option<MemberView> {
        self.views
            .iter()
            .find(|v| v.id == self.setup.node_id)
            .cloned()
    }

    fn entry_member(&self) -> Option<&pb::Member> {
        if self.is_entry() {
            return self.members.iter().find(|m| m.local);
        }
        let (entry, _) = self.election.following()?;
        self.members.iter().find(|m| m.id == entry)
    }

    fn view_changed(&mut self) {
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

    fn feed_follower(&mut self) {
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

    fn probe(&mut self) {
        self.probing = true;
        let m8s = self.setup.microk8s.clone();
        let remembered = self.remembered.clone();
        let tx = self.tx.clone();
        let known_version = self.facts.version.clone();
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
            let facts = facts::probe(m8s.as_ref(), remembered.as_deref(), version).await;
            let _ = tx.send(Command::Facts(Box::new(facts))).await;
        });
    }

    fn on_command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::Claim { from, claim, reply } => {
                self.pending_claims.insert(from.clone(), reply);
                self.election
                    .handle(now, election::Input::Claim { from, claim });
            }
            Command::JoinRequest { req, reply } => {
                let answer = if self.is_entry() {
                    let cluster = self.facts.cluster_id.clone().unwrap_or_default();
                    let mut response = self.coordinator.request(now, req);
                    // Queued followers ask again soon: the answer is cheap (no microk8s
                    // command), and a grant waiting for its next question is dead time in a
                    // formation that is serialised anyway.
                    if let formation::JoinResponse::Wait { retry_after, .. } = &mut response {
                        *retry_after = (*retry_after).min(FAST_POLL);
                    }
                    rpc::response_to_pb(&response, &cluster)
                } else {
                    rpc::response_to_pb(
                        &formation::JoinResponse::Wait {
                            position: 0,
                            retry_after: Duration::from_secs(2),
                            reason: formation::WaitReason::Queued,
                        },
                        "",
                    )
                };
                let _ = reply.send(answer);
            }
            Command::Report { from, ok, detail } => {
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
                let interval = if self.serving {
                    FAST_POLL
                } else {
                    self.setup.formation.poll_interval
                };
                self.next_probe = now + interval;
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
                self.next_probe = now;
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
                self.next_probe = now;
                self.follower
                    .handle(now, formation::FollowerInput::Verified { ok, detail })
            }
            Command::LeftOther { ok, detail } => self
                .follower
                .handle(now, formation::FollowerInput::LeftOther { ok, detail }),
        }
    }

    fn leave(&mut self, reply: oneshot::Sender<String>) {
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

    fn client(&mut self, addr: &str) -> Option<PeerClient<Channel>> {
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

    fn addr_of(&self, id: &str) -> Option<String> {
        self.members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.addr.clone())
    }

    /// Carries out everything the three cores asked for, then publishes status and fields.
    fn process(&mut self) {
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

    fn emit(&self, level: Level, event: Event, peer: &str, message: String) {
        let role = self.role_word();
        self.events
            .emit(level, event, peer, &[(Field::Role, role)], message);
    }

    fn on_election(&mut self, out: election::Output) {
        use election::Output as O;
        match out {
            O::Persist(hs) => {
                let text = format!("{} {}\n", hs.voted_term, hs.voted_for.unwrap_or_default());
                let path = self.setup.data_dir.join("election-vote");
                let tmp = path.with_extension("tmp");
                // The vote must be durable before the reply that depends on it goes out.
                if let Err(e) =
                    std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path))
                {
                    log::error!(
                        "cannot persist the election vote to {}: {e}",
                        path.display()
                    );
                }
            }
            O::SendClaim { to, claim } => {
                let Some(mut client) = self.addr_of(&to).and_then(|a| self.client(&a)) else {
                    return;
                };
                let req = rpc::claim_to_pb(&self.setup.cluster, &self.setup.node_id, &claim);
                let tx = self.tx.clone();
                self.tracker.spawn(async move {
                    let reply = match client.claim(req).await {
                        Ok(r) => Some(rpc::reply_from_pb(r.into_inner())),
                        Err(_) => None,
                    };
                    let _ = tx.send(Command::ClaimAnswer { from: to, reply }).await;
                });
            }
            O::SendClaimReply { to, reply } => {
                if let Some(tx) = self.pending_claims.remove(&to) {
                    let _ = tx.send(rpc::reply_to_pb(&reply));
                }
            }
            O::ClaimStarted { term, .. } => self.emit(
                Level::Info,
                Event::ClaimStarted,
                "",
                format!("claiming the entry point for term {term}"),
            ),
            O::ClaimFailed { term, reason } => {
                log::debug!("claim of term {term} failed: {reason:?}")
            }
            O::BecameEntry { term } => {
                self.next_probe = self.now();
                self.emit(
                    Level::Info,
                    Event::EntryElected,
                    &self.setup.node_name.clone(),
                    format!("this node is the entry point (term {term})"),
                );
            }
            O::SteppedDown { term, reason } => self.emit(
                Level::Info,
                Event::EntrySteppedDown,
                "",
                format!("stepped down as entry point of term {term}: {reason:?}"),
            ),
            O::Following { entry, term } => {
                let name = self
                    .members
                    .iter()
                    .find(|m| m.id == entry)
                    .map(|m| m.name.clone())
                    .unwrap_or(entry);
                self.emit(
                    Level::Info,
                    Event::EntryFollowed,
                    &name,
                    format!("following entry point {name} (term {term})"),
                );
            }
            O::Unfollowed { entry, term } => {
                log::debug!("no longer following {entry} (term {term})")
            }
            O::Announce {
                entry_term,
                followed,
            } => self.announce = (entry_term, followed),
            O::Conflict(c) => {
                let text = format!(
                    "{} microk8s clusters among the members ({}); neither is torn down: make the nodes of the smaller one run `muster leave` (or `microk8s leave`) to join the larger",
                    c.clusters.len(),
                    c.clusters
                        .iter()
                        .map(|x| format!("{} with {} node(s)", x.cluster_id, x.size))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                self.emit(Level::Warn, Event::ClusterConflict, "", text.clone());
                self.conflict = Some(text);
            }
            O::ConflictCleared => self.conflict = None,
        }
    }

    fn on_entry(&mut self, out: formation::EntryOutput) {
        use formation::EntryOutput as O;
        let m8s = self.setup.microk8s.clone();
        let tx = self.tx.clone();
        match out {
            O::AddNode {
                follower,
                token,
                ttl,
            } => {
                self.tracker.spawn(async move {
                    let result = match JoinToken::new(token) {
                        Ok(t) => m8s
                            .add_node(&t, TokenTtl::Expires(ttl))
                            .await
                            .map(|o| o.urls.iter().map(|u| u.expose()).collect())
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = tx.send(Command::AddNode { follower, result }).await;
                });
            }
            O::RemoveNode { name, force } => {
                self.tracker.spawn(async move {
                    let (ok, detail) = match m8s.remove_node(&name, force).await {
                        Ok(o) => (true, format!("{o:?}")),
                        Err(e) => (false, e.to_string()),
                    };
                    let _ = tx.send(Command::Removed { name, ok, detail }).await;
                });
            }
            O::RefreshFacts => self.next_probe = self.now(),
            O::Granted { name, role, .. } => {
                self.serving = true;
                self.next_probe = self.now();
                self.emit(
                    Level::Info,
                    Event::JoinGranted,
                    &name,
                    format!("granted {name} a join as {}", rpc::role_word(role)),
                )
            }
            O::Joined { name, role, .. } => {
                self.serving = false;
                self.emit(
                    Level::Info,
                    Event::NodeJoined,
                    &name,
                    format!("{name} joined as {} (verified)", rpc::role_word(role)),
                )
            }
            O::JoinFailed { name, reason, .. } => {
                self.serving = false;
                self.emit(
                    Level::Warn,
                    Event::JoinFailed,
                    &name,
                    format!("join of {name} failed: {reason:?}"),
                )
            }
            O::Removed { name } => self.emit(
                Level::Info,
                Event::NodeRemoved,
                &name,
                format!("removed {name} from the cluster"),
            ),
            O::RemoveFailed { name, detail } => self.emit(
                Level::Warn,
                Event::RemoveFailed,
                &name,
                format!("removing {name} failed: {detail}"),
            ),
            O::Blocked(b) => {
                let text = format!("joins are blocked: {b:?}");
                self.emit(Level::Warn, Event::JoinsBlocked, "", text.clone());
                self.blocked = Some(text);
            }
            O::Unblocked => self.blocked = None,
        }
    }

    fn on_follower(&mut self, out: formation::FollowerOutput) {
        use formation::FollowerOutput as O;
        let m8s = self.setup.microk8s.clone();
        let tx = self.tx.clone();
        match out {
            O::WaitReady => {
                self.tracker.spawn(async move {
                    let (ok, detail) = match m8s.status(Some(WAIT_READY)).await {
                        Ok(Status::Running(_)) | Ok(Status::Worker) => (true, String::new()),
                        Ok(other) => (false, format!("microk8s is not ready: {other:?}")),
                        Err(e) => (false, e.to_string()),
                    };
                    let _ = tx.send(Command::Ready { ok, detail }).await;
                });
            }
            O::RequestJoin { entry } => {
                let Some(mut client) = self.addr_of(&entry).and_then(|a| self.client(&a)) else {
                    let _ = self.tx.try_send(Command::JoinAnswer {
                        from: entry,
                        result: Err("the entry point's address is unknown".to_owned()),
                    });
                    return;
                };
                let req = pb::JoinRequestMsg {
                    cluster: self.setup.cluster.clone(),
                    from: self.setup.node_id.clone(),
                    name: self.setup.node_name.clone(),
                    addr: self.setup.advertise.to_string(),
                    preference: rpc::preference_word(self.setup.formation.role).to_owned(),
                    version: self.facts.version.clone().unwrap_or_default(),
                };
                self.tracker.spawn(async move {
                    let result = match client.request_join(req).await {
                        Ok(r) => rpc::response_from_pb(r.into_inner()).map_err(|e| e.to_string()),
                        Err(e) => Err(e.message().to_owned()),
                    };
                    let _ = tx
                        .send(Command::JoinAnswer {
                            from: entry,
                            result,
                        })
                        .await;
                });
            }
            O::Join { url, role } => {
                let entry = self
                    .entry_member()
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                self.emit(
                    Level::Info,
                    Event::JoinStarted,
                    &entry,
                    format!("joining {entry} as {}", rpc::role_word(role)),
                );
                self.tracker.spawn(async move {
                    let started = Instant::now();
                    let (ok, detail) = match JoinUrl::parse(&url) {
                        Ok(u) => match m8s.join(&u, m8s_role(role)).await {
                            Ok(_) => (true, String::new()),
                            Err(e) => (false, e.to_string()),
                        },
                        Err(e) => (false, e.to_string()),
                    };
                    let took = started.elapsed();
                    let _ = tx.send(Command::JoinDone { ok, detail, took }).await;
                });
            }
            O::Verify { role } => self.verify(role),
            O::Report { entry, ok, detail } => {
                if let Some(mut client) = self.addr_of(&entry).and_then(|a| self.client(&a)) {
                    let req = pb::JoinReportMsg {
                        cluster: self.setup.cluster.clone(),
                        from: self.setup.node_id.clone(),
                        ok,
                        detail,
                    };
                    self.tracker.spawn(async move {
                        // Fire and forget: the entry point also verifies on its own.
                        let _ = client.report_join(req).await;
                    });
                }
            }
            O::LeaveOtherCluster => {
                self.tracker.spawn(async move {
                    let (ok, detail) = match m8s.leave().await {
                        Ok(()) => (true, String::new()),
                        Err(e) => (false, e.to_string()),
                    };
                    let _ = tx.send(Command::LeftOther { ok, detail }).await;
                });
            }
            O::Phase(p) => {
                if p == formation::Phase::Joined {
                    let name = self.setup.node_name.clone();
                    self.emit(
                        Level::Info,
                        Event::NodeJoined,
                        &name,
                        "this node joined the cluster (verified)".to_owned(),
                    );
                }
                if let formation::Phase::Failed {
                    attempt, reason, ..
                } = &p
                {
                    let attempt = attempt.to_string();
                    self.events.emit(
                        Level::Warn,
                        Event::JoinFailed,
                        &self.setup.node_name,
                        &[(Field::Attempt, &attempt)],
                        format!("join attempt {attempt} failed: {reason:?}; retrying with backoff"),
                    );
                }
                self.phase = p;
            }
            O::Refused(rs) => {
                self.refusals = rs.iter().map(ToString::to_string).collect();
                let text = self.refusals.join("; ");
                self.emit(
                    Level::Warn,
                    Event::JoinRefused,
                    "",
                    format!("not joining: {text}"),
                );
            }
            O::RefusalCleared => self.refusals.clear(),
        }
    }

    /// Polls until this node is verified joined (or the verify timeout passes).
    fn verify(&mut self, role: JoinRole) {
        let m8s = self.setup.microk8s.clone();
        let tx = self.tx.clone();
        let mut snap = self.snapshot_rx.clone();
        let entry_id = self.entry_member().map(|m| m.id.clone());
        let name = self.setup.node_name.clone();
        let ip = self.setup.advertise.ip();
        let limit = self.setup.formation.verify_timeout;
        self.tracker.spawn(async move {
            let started = Instant::now();
            let mut last = String::from("not checked yet");
            while started.elapsed() < limit {
                let entry = snap
                    .borrow_and_update()
                    .members
                    .iter()
                    .find(|m| Some(&m.id) == entry_id.as_ref())
                    .cloned();
                let by_entry = entry
                    .as_ref()
                    .map(|e| facts::verified_by_entry(e, &name, Some(ip), m8s_role(role)))
                    .unwrap_or_else(|| Err("the entry point is not in the view".to_owned()));
                let local = match role {
                    // A control plane can check itself: Ready and in the datastore lines.
                    JoinRole::ControlPlane => match (m8s.nodes().await, m8s.status(None).await) {
                        (Ok(nodes), Ok(status)) => crate::cluster::verify_joined(
                            &nodes,
                            Some(&status),
                            &Expected {
                                name: &name,
                                ip,
                                role: M8sRole::ControlPlane,
                            },
                        )
                        .map_err(|e| format!("{e:?}")),
                        (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                    },
                    JoinRole::Worker => match m8s.status(None).await {
                        Ok(Status::Worker) => Ok(()),
                        Ok(other) => Err(format!("microk8s does not act as a worker: {other:?}")),
                        Err(e) => Err(e.to_string()),
                    },
                };
                match local.and(by_entry) {
                    Ok(()) => {
                        let _ = tx
                            .send(Command::Verified {
                                ok: true,
                                detail: String::new(),
                            })
                            .await;
                        return;
                    }
                    Err(e) => last = e,
                }
                tokio::time::sleep(FAST_POLL).await;
            }
            // A join that exited 0 but never completed leaves microk8s half-joined (not
            // ready, its own datastore discarded): `microk8s leave` resets it to a standalone
            // node so that the retry starts clean.
            let reset = match m8s.leave().await {
                Ok(()) => "microk8s reset with `microk8s leave`".to_owned(),
                Err(e) => format!("`microk8s leave` to reset it failed: {e}"),
            };
            let detail = format!(
                "not verified within {}: {last}; {reset}",
                humantime::format_duration(limit)
            );
            let _ = tx.send(Command::Verified { ok: false, detail }).await;
        });
    }

    fn role_word(&self) -> &'static str {
        let joining = self.phase.is_joining();
        match self.local_view() {
            Some(v) => formation::node_role(self.is_entry(), joining, &v).as_str(),
            None => "unclustered",
        }
    }

    fn publish_fields(&mut self) {
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

    fn publish_status(&self) {
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

fn m8s_role(r: JoinRole) -> M8sRole {
    match r {
        JoinRole::ControlPlane => M8sRole::ControlPlane,
        JoinRole::Worker => M8sRole::Worker,
    }
}

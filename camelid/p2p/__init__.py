"""Peer-to-peer networking (whitepaper 2.1): wire format, address book, connections and routing.

Layers, lowest first:

* errors    -- ProtocolViolation, the one exception any decoder raises, and HandshakeRefused;
* schema    -- strict msgpack payload schemas (exact keys, types, bounds, canonical encoding);
* messages/ -- one module per message family, and MESSAGE_TYPES (command -> class);
* wire      -- the 24-byte frame header and the streaming FrameDecoder;
* peer_address -- the "IP[:port]" text users give --connect, --addnode and the addnode RPC;
* addrbook  -- new/tried address tables, bucketed against flooding, saved as peers.json;
* banlist   -- operator bans (banlist.json) and automatic discouragement;
* limits    -- token buckets and bounded recency sets for peer-controlled traffic;
* peer      -- one TCP connection: handshake, ping latency, counters;
* manager   -- PeerManager, the service the daemon runs: listening, dialling, gossip,
               directed routing, the misbehaviour rule, and the handler interface
               the relay/sync layer builds on.

The byte-level protocol is specified in docs/protocol.md ("P2P messages").
"""

-- Lanes name an ordering, not an address (issue 20): a user's private chat with the
-- bot was the lane "27" and a group chat that is no dialog's "chat5", the same strings
-- as the chats' addresses. They become "client:27" and "chat:5", as package outbox
-- writes them now, so that entries queued before and after the upgrade share a lane.
UPDATE outbox SET lane = 'chat:' || SUBSTR(lane, 5)
	WHERE lane LIKE 'chat%' AND lane NOT LIKE 'chat:%';
UPDATE outbox SET lane = 'client:' || lane
	WHERE lane <> 'setup' AND lane NOT LIKE 'dialog:%' AND lane NOT LIKE 'chat:%' AND lane NOT LIKE 'client:%';

-- The outbox holds actions (what the bot wants done) rather than v1 calls: the kind
-- of action and its JSON, which bitrix24 renders as a call of the bot's API version
-- when it is sent. Entries written by earlier versions are converted in place, so an
-- upgrade with replies still pending loses none of them. AwaitedChatID keeps the
-- value the old chat placeholder had, so texts that link to a chat being created
-- convert as they are.
ALTER TABLE outbox RENAME COLUMN chat_key TO lane;
ALTER TABLE outbox RENAME COLUMN method TO kind;
ALTER TABLE outbox RENAME COLUMN params TO action;
ALTER TABLE outbox RENAME COLUMN needs_dialog TO awaits_dialog;

UPDATE outbox SET kind = 'send_message', action = json_object(
    'dialog_id', action -> '$.DIALOG_ID', 'text', action -> '$.MESSAGE', 'keyboard', action -> '$.KEYBOARD')
WHERE kind = 'imbot.message.add';

UPDATE outbox SET kind = 'update_message', action = json_object(
    'message_id', action -> '$.MESSAGE_ID', 'text', action -> '$.MESSAGE',
    'drop_keyboard', json(CASE WHEN action ->> '$.KEYBOARD' = 'N' THEN 'true' ELSE 'false' END))
WHERE kind = 'imbot.message.update';

UPDATE outbox SET kind = 'create_chat', action = json_object(
    'title', action -> '$.TITLE', 'users', action -> '$.USERS',
    'entity_type', action -> '$.ENTITY_TYPE', 'entity_id', action -> '$.ENTITY_ID')
WHERE kind = 'imbot.chat.add';

-- CHAT_ID was the chat placeholder (a JSON string) or, in principle, a number.
UPDATE outbox SET kind = 'rename_chat', action = json_object(
    'dialog_id', CASE json_type(action, '$.CHAT_ID')
        WHEN 'text' THEN json('"chat' || substr(action -> '$.CHAT_ID', 2))
        ELSE json_quote('chat' || (action ->> '$.CHAT_ID')) END,
    'title', action -> '$.TITLE')
WHERE kind = 'imbot.chat.updateTitle';

UPDATE outbox SET kind = 'register_bot', action = json_object('profile', json_object(
    'code', action -> '$.CODE', 'name', action -> '$.PROPERTIES.NAME', 'color', action -> '$.PROPERTIES.COLOR',
    'work_position', coalesce(action ->> '$.PROPERTIES.WORK_POSITION', ''),
    'handler_url', action -> '$.EVENT_HANDLER', 'client_id', coalesce(action ->> '$.CLIENT_ID', '')))
WHERE kind = 'imbot.register';

UPDATE outbox SET kind = 'register_command', action = json_object(
    'command', json_object(
        'name', action -> '$.COMMAND',
        'hidden', json(CASE WHEN action ->> '$.HIDDEN' = 'Y' THEN 'true' ELSE 'false' END),
        'titles', json((SELECT json_group_array(json_object('language', l.value -> '$.LANGUAGE_ID',
            'title', l.value -> '$.TITLE', 'params', coalesce(l.value ->> '$.PARAMS', '')))
            FROM json_each(outbox.action, '$.LANG') l))),
    'handler_url', action -> '$.EVENT_COMMAND_ADD', 'client_id', coalesce(action ->> '$.CLIENT_ID', ''))
WHERE kind = 'imbot.command.register';

-- event.bind's parameters were already {"event", "handler"}.
UPDATE outbox SET kind = 'bind_event' WHERE kind = 'event.bind';

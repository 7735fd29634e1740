from floodgate_client._proto.floodgate.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckCapacityRequest(_message.Message):
    __slots__ = ("user_type", "subject", "session_id", "transport", "route", "request_id")
    USER_TYPE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_type: _common_pb2.UserType
    subject: str
    session_id: str
    transport: _common_pb2.Transport
    route: str
    request_id: str
    def __init__(self, user_type: _Optional[_Union[_common_pb2.UserType, str]] = ..., subject: _Optional[str] = ..., session_id: _Optional[str] = ..., transport: _Optional[_Union[_common_pb2.Transport, str]] = ..., route: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CheckCapacityResponse(_message.Message):
    __slots__ = ("decision", "http_status", "retry_after_ms", "reason", "pressure_ratio")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PRESSURE_RATIO_FIELD_NUMBER: _ClassVar[int]
    decision: _common_pb2.Decision
    http_status: int
    retry_after_ms: int
    reason: str
    pressure_ratio: float
    def __init__(self, decision: _Optional[_Union[_common_pb2.Decision, str]] = ..., http_status: _Optional[int] = ..., retry_after_ms: _Optional[int] = ..., reason: _Optional[str] = ..., pressure_ratio: _Optional[float] = ...) -> None: ...

class EnqueueAtomicRequest(_message.Message):
    __slots__ = ("user_type", "subject", "session_id", "transport", "route", "request_id", "payload", "idempotency_key")
    USER_TYPE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    user_type: _common_pb2.UserType
    subject: str
    session_id: str
    transport: _common_pb2.Transport
    route: str
    request_id: str
    payload: bytes
    idempotency_key: str
    def __init__(self, user_type: _Optional[_Union[_common_pb2.UserType, str]] = ..., subject: _Optional[str] = ..., session_id: _Optional[str] = ..., transport: _Optional[_Union[_common_pb2.Transport, str]] = ..., route: _Optional[str] = ..., request_id: _Optional[str] = ..., payload: _Optional[bytes] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class EnqueueAtomicResponse(_message.Message):
    __slots__ = ("decision", "http_status", "retry_after_ms", "reason", "pressure_ratio", "task_id", "queue_position")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PRESSURE_RATIO_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    decision: _common_pb2.Decision
    http_status: int
    retry_after_ms: int
    reason: str
    pressure_ratio: float
    task_id: str
    queue_position: int
    def __init__(self, decision: _Optional[_Union[_common_pb2.Decision, str]] = ..., http_status: _Optional[int] = ..., retry_after_ms: _Optional[int] = ..., reason: _Optional[str] = ..., pressure_ratio: _Optional[float] = ..., task_id: _Optional[str] = ..., queue_position: _Optional[int] = ...) -> None: ...

from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class UserType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USER_TYPE_UNSPECIFIED: _ClassVar[UserType]
    USER_TYPE_ANONYMOUS: _ClassVar[UserType]
    USER_TYPE_REGISTERED: _ClassVar[UserType]
    USER_TYPE_PRIVILEGED: _ClassVar[UserType]

class Transport(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSPORT_UNSPECIFIED: _ClassVar[Transport]
    TRANSPORT_REST: _ClassVar[Transport]
    TRANSPORT_WEBSOCKET: _ClassVar[Transport]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_ADMIT: _ClassVar[Decision]
    DECISION_RATE_LIMITED: _ClassVar[Decision]
    DECISION_BACKPRESSURE: _ClassVar[Decision]
    DECISION_CIRCUIT_OPEN: _ClassVar[Decision]

class ProcessStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROCESS_STATUS_UNSPECIFIED: _ClassVar[ProcessStatus]
    PROCESS_STATUS_HEALTHY: _ClassVar[ProcessStatus]
    PROCESS_STATUS_DEGRADED: _ClassVar[ProcessStatus]
    PROCESS_STATUS_UNHEALTHY: _ClassVar[ProcessStatus]
USER_TYPE_UNSPECIFIED: UserType
USER_TYPE_ANONYMOUS: UserType
USER_TYPE_REGISTERED: UserType
USER_TYPE_PRIVILEGED: UserType
TRANSPORT_UNSPECIFIED: Transport
TRANSPORT_REST: Transport
TRANSPORT_WEBSOCKET: Transport
DECISION_UNSPECIFIED: Decision
DECISION_ADMIT: Decision
DECISION_RATE_LIMITED: Decision
DECISION_BACKPRESSURE: Decision
DECISION_CIRCUIT_OPEN: Decision
PROCESS_STATUS_UNSPECIFIED: ProcessStatus
PROCESS_STATUS_HEALTHY: ProcessStatus
PROCESS_STATUS_DEGRADED: ProcessStatus
PROCESS_STATUS_UNHEALTHY: ProcessStatus

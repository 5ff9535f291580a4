/* stub: to be written */
typedef int ferry_stub_broker;

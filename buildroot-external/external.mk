include $(sort $(wildcard $(BR2_EXTERNAL_OPIE_PATH)/package/*/*.mk))
